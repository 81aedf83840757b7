// XLA FFI handlers that hand a matrix product to numpy's bundled OpenBLAS, zero-copy.
//
// Built at run time by benchmarks/blas_dispatch.py (g++ and jaxlib's FFI headers); the
// OpenBLAS symbols resolve against the libscipy_openblas that numpy has already loaded.
// C = op(A) op(B), row-major, op = transpose when trans_a / trans_b: BLAS's own flags, so
// no operand is copied or transposed in memory.
#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

extern "C" {
// numpy >= 2 bundles OpenBLAS built with 64-bit integers and the scipy_ prefix.
void scipy_cblas_sgemm64_(int order, int transa, int transb, int64_t m, int64_t n, int64_t k,
                          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                          float beta, float* c, int64_t ldc);
void scipy_cblas_dgemm64_(int order, int transa, int transb, int64_t m, int64_t n, int64_t k,
                          double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                          double beta, double* c, int64_t ldc);
}

namespace {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

template <typename T, typename Gemm>
ffi::Error Product(Gemm gemm, const T* a, ffi::Span<const int64_t> da, const T* b,
                   ffi::Span<const int64_t> db, T* c, bool trans_a, bool trans_b) {
  if (da.size() != 2 || db.size() != 2) return ffi::Error::InvalidArgument("2-D operands only");
  const int64_t m = trans_a ? da[1] : da[0];
  const int64_t k = trans_a ? da[0] : da[1];
  const int64_t kb = trans_b ? db[1] : db[0];
  const int64_t n = trans_b ? db[0] : db[1];
  if (k != kb) return ffi::Error::InvalidArgument("contracting dimensions differ");
  gemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, m, n, k, T(1), a,
       da[1], b, db[1], T(0), c, n);
  return ffi::Error::Success();
}

ffi::Error Sgemm(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                 ffi::ResultBuffer<ffi::F32> c, bool trans_a, bool trans_b) {
  return Product<float>(scipy_cblas_sgemm64_, a.typed_data(), a.dimensions(), b.typed_data(),
                        b.dimensions(), c->typed_data(), trans_a, trans_b);
}

ffi::Error Dgemm(ffi::Buffer<ffi::F64> a, ffi::Buffer<ffi::F64> b,
                 ffi::ResultBuffer<ffi::F64> c, bool trans_a, bool trans_b) {
  return Product<double>(scipy_cblas_dgemm64_, a.typed_data(), a.dimensions(), b.typed_data(),
                         b.dimensions(), c->typed_data(), trans_a, trans_b);
}
}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SaeSgemm, Sgemm,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SaeDgemm, Dgemm,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Arg<ffi::Buffer<ffi::F64>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b"));
