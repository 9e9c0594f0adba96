//! `glmhal ops`: the op catalogue.

use glmhal_hal::Result;

/// Prints the catalogue as a list (or JSON).
pub fn run(json: bool) -> Result<()> {
    let cat = glmhal_ops::catalogue();
    if json {
        println!("{}", serde_json::to_string_pretty(&cat).unwrap_or_default());
        return Ok(());
    }
    for spec in cat {
        println!("{}: {}", spec.name, spec.summary);
        if !spec.params.is_empty() {
            println!("    params: {}", spec.params.join("; "));
        }
        for (role, args) in [("in ", &spec.inputs), ("out", &spec.outputs)] {
            for a in args.iter() {
                let dts: Vec<&str> = a.dtypes.iter().map(|d| d.name()).collect();
                let opt = if a.optional { " (optional)" } else { "" };
                println!(
                    "    {role} {:<10} {:<16} {}{opt}",
                    a.name,
                    a.shape,
                    dts.join("|")
                );
            }
        }
    }
    Ok(())
}
