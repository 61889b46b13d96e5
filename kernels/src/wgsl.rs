//! WGSL compute shaders from `kernels/wgsl/`, with their entry points and bindings.
