//! add and mul with broadcasting of the second operand.

use glmhal_hal::HostTensor;

pub(crate) fn broadcast(a: &HostTensor, b: &HostTensor, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (av, bv) = (a.to_f64(), b.to_f64());
    let shape = &a.desc.shape;
    let bshape = &b.desc.shape;
    let bstrides = glmhal_hal::contiguous_strides(bshape);
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(av.len());
    for x in av {
        let bi: usize = index
            .iter()
            .zip(bshape)
            .zip(&bstrides)
            .map(|((i, n), s)| if *n == 1 { 0 } else { i * s })
            .sum();
        out.push(f(x, bv[bi]));
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}
