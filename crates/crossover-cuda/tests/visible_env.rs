//! `CUDA_VISIBLE_DEVICES=""` hides every device, with that reason, whether or not a
//! driver is installed. Its own test binary: it sets the process environment.

#[test]
fn empty_cuda_visible_devices_means_no_device() {
    std::env::set_var("CUDA_VISIBLE_DEVICES", "");
    let err = crossover_cuda::devices().expect_err("no device may be visible");
    assert!(err.reason.contains("CUDA_VISIBLE_DEVICES"), "{err}");
    assert!(err.to_string().starts_with("CUDA not available: "), "{err}");
    let e = crossover_cuda::CudaBackend::new(0)
        .err()
        .expect("cuda:0 is hidden");
    assert!(e.to_string().contains("CUDA_VISIBLE_DEVICES"), "{e}");
    std::env::set_var("CUDA_VISIBLE_DEVICES", "-1");
    let err = crossover_cuda::devices().expect_err("-1 names no device");
    assert!(err.reason.contains("names no device"), "{err}");
}
