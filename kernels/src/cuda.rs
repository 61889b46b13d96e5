//! CUDA kernels: the committed PTX of each source in `kernels/cuda/`, with launch metadata.
