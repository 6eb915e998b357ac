// The BLAS under LibTorch on CPU. Debian's LibTorch calls the generic libblas.so.3, which is
// whichever implementation update-alternatives points at: netlib's reference BLAS (one thread,
// slow), OpenBLAS (scripts/install-deps.sh installs its pthread build) or BLIS. OpenBLAS and
// BLIS start a thread per core for every call; flowinfer already runs one single-threaded
// model call per core on TBB, so each call gets as many BLAS threads as LibTorch threads
// (runtime.torch_threads, 1 by default) instead of oversubscribing the cores.
//
// Thread safety: set_blas_threads may be called from any thread; it reaches the library only
// when the count changes (a run uses one count), never while another call changes it.
#pragma once

#include <string>

namespace flowinfer {

// Sets the BLAS library's own thread count, when it has one (OpenBLAS, BLIS); a no-op for
// netlib's BLAS and for a LibTorch with its BLAS built in (the PyPI wheel's MKL/OpenBLAS
// follows at::set_num_threads).
void set_blas_threads(int threads);

// Which BLAS the process runs: the file that defines sgemm_ (e.g.
// /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3), or "built in" / "none".
std::string blas_library();

}  // namespace flowinfer
