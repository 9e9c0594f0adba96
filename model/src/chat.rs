//! Chat prompts in the GLM-4 and ChatGLM3 formats, built from special tokens.

use glmhal_hal::{HalError, Result};

use crate::tokenizer::Tokenizer;

/// Who says a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// System instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's output.
    Observation,
}

impl Role {
    fn token(self) -> &'static str {
        match self {
            Role::System => "<|system|>",
            Role::User => "<|user|>",
            Role::Assistant => "<|assistant|>",
            Role::Observation => "<|observation|>",
        }
    }
}

/// Which prompt format a tokenizer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatFormat {
    /// `[gMASK]<sop><|user|>\n...<|assistant|>`.
    Glm4,
    /// `[gMASK]sop<|user|>\n...<|assistant|>`.
    ChatGlm3,
}

impl ChatFormat {
    /// The format whose special tokens the tokenizer has.
    pub fn detect(t: &Tokenizer) -> Result<Self> {
        if t.special("<sop>").is_some() {
            Ok(ChatFormat::Glm4)
        } else if t.special("sop").is_some() {
            Ok(ChatFormat::ChatGlm3)
        } else {
            Err(HalError::invalid(
                "chat",
                "the tokenizer has neither GLM-4's <sop> nor ChatGLM3's sop token",
            ))
        }
    }
}

/// Token ids of a conversation, ending with the assistant's turn marker.
pub fn chat_prompt(t: &Tokenizer, messages: &[(Role, String)]) -> Result<Vec<u32>> {
    let format = ChatFormat::detect(t)?;
    let special = |s: &str| {
        t.special(s)
            .ok_or_else(|| HalError::invalid("chat", format!("the tokenizer lacks `{s}`")))
    };
    let sop = if format == ChatFormat::Glm4 {
        "<sop>"
    } else {
        "sop"
    };
    let mut ids = vec![special("[gMASK]")?, special(sop)?];
    for (role, text) in messages {
        ids.push(special(role.token())?);
        ids.extend(t.encode(&format!("\n{text}"))?);
    }
    ids.push(special(Role::Assistant.token())?);
    Ok(ids)
}

/// The ids that end an assistant turn: the model's EOS ids plus `<|user|>` and `<|observation|>`.
pub fn stop_ids(t: &Tokenizer, eos: &[u32]) -> Vec<u32> {
    let mut ids = eos.to_vec();
    for s in ["<|endoftext|>", "<|user|>", "<|observation|>"] {
        if let Some(id) = t.special(s) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glm4_prompt_shape() {
        let dir = std::env::temp_dir().join(format!("glmhal-chat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("tokenizer.json"),
            crate::tokenizer::synthetic_tokenizer_json(512),
        )
        .unwrap();
        let t = Tokenizer::from_dir(&dir).unwrap();
        let ids = chat_prompt(&t, &[(Role::User, "hi".into())]).unwrap();
        assert_eq!(
            t.decode(&ids).unwrap(),
            "[gMASK]<sop><|user|>\nhi<|assistant|>"
        );
        assert!(stop_ids(&t, &[]).contains(&t.special("<|user|>").unwrap()));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn chatglm3_prompt_shape() {
        let dir = std::env::temp_dir().join(format!("glmhal-chat3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // ChatGLM3 names its start-of-piece token `sop`, without brackets.
        let json = crate::tokenizer::synthetic_tokenizer_json(512).replace("<sop>", "sop");
        std::fs::write(dir.join("tokenizer.json"), json).unwrap();
        let t = Tokenizer::from_dir(&dir).unwrap();
        assert_eq!(ChatFormat::detect(&t).unwrap(), ChatFormat::ChatGlm3);
        let msgs = [
            (Role::System, "be brief".to_string()),
            (Role::User, "你好".to_string()),
        ];
        let ids = chat_prompt(&t, &msgs).unwrap();
        assert_eq!(
            &ids[..2],
            &[t.special("[gMASK]").unwrap(), t.special("sop").unwrap()]
        );
        assert_eq!(
            t.decode(&ids).unwrap(),
            "[gMASK]sop<|system|>\nbe brief<|user|>\n你好<|assistant|>"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
