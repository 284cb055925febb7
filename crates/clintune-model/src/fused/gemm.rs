//! Strided matrix products on f32 slices, through the `gemm` crate that
//! burn-flex's own matmul uses: single-threaded inside the attention
//! kernel's rayon tasks, on every thread for the linear maps.

/// A read-only matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// `rows × cols` starting at `data[0]`, rows `rs` apart, columns `cs`.
    /// Panics when the last element lies outside `data`.
    pub(crate) fn new(data: &'a [f32], [rows, cols]: [usize; 2], [rs, cs]: [usize; 2]) -> Self {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * rs + (cols - 1) * cs < data.len(),
                "matrix view outside its slice"
            );
        }
        Self {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A row-major `rows × cols` matrix.
    pub(crate) fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(&data[..rows * cols], [rows, cols], [cols, 1])
    }

    /// The transpose (no copy).
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Row `i`, when its elements are adjacent.
    pub(crate) fn row(self, i: usize) -> &'a [f32] {
        assert!(self.cs == 1 && i < self.rows, "not a dense row");
        &self.data[i * self.rs..][..self.cols]
    }

    /// Rows `start..start + len`.
    pub(crate) fn rows(self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.rows, "row range outside the matrix");
        let offset = (start * self.rs).min(self.data.len());
        Self {
            data: &self.data[offset..],
            rows: len,
            ..self
        }
    }
}

/// `dst = (dst if accumulate, else 0) + scale · lhs · rhs`, `dst` row-major
/// `lhs.rows × rhs.cols`, on the calling thread.
pub(crate) fn matmul(dst: &mut [f32], lhs: Mat, rhs: Mat, scale: f32, accumulate: bool) {
    product(dst, lhs, rhs, scale, accumulate, gemm::Parallelism::None);
}

/// `dst = lhs · rhs` on every rayon thread.
pub(crate) fn matmul_threaded(dst: &mut [f32], lhs: Mat, rhs: Mat) {
    product(dst, lhs, rhs, 1.0, false, gemm::Parallelism::Rayon(0));
}

fn product(
    dst: &mut [f32],
    lhs: Mat,
    rhs: Mat,
    scale: f32,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "inner dimensions differ");
    assert!(dst.len() >= m * n, "destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the views were checked to lie inside their slices (`Mat::new`,
    // `Mat::rows`) and `dst` holds `m · n` elements; `dst` is a `&mut` and so
    // overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(lhs: Mat, rhs: Mat) -> Vec<f32> {
        let mut out = vec![0.0; lhs.rows * rhs.cols];
        for r in 0..lhs.rows {
            for c in 0..rhs.cols {
                out[r * rhs.cols + c] = (0..lhs.cols)
                    .map(|i| lhs.data[r * lhs.rs + i * lhs.cs] * rhs.data[i * rhs.rs + c * rhs.cs])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_transposed_and_accumulated_products_match_the_definition() {
        let a: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..30).map(|i| (i as f32 * 0.11).cos()).collect();
        // Every other row of a 6×4 matrix, times the transpose of a 5×... view.
        let lhs = Mat::new(&a, [3, 4], [8, 1]);
        let rhs = Mat::new(&b, [5, 4], [6, 1]).t();
        let want = naive(lhs, rhs);
        let mut got = vec![1.0; 15];
        matmul(&mut got, lhs, rhs, 2.0, true);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - (1.0 + 2.0 * w)).abs() < 1e-5, "{g} vs {w}");
        }
        matmul(&mut got, lhs.rows(1, 2), rhs, 1.0, false);
        for (g, w) in got.iter().zip(&want[5..]) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_view_past_its_slice_is_refused() {
        Mat::new(&[0.0; 8], [3, 3], [3, 1]);
    }
}
