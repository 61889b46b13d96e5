"""Compiles one CUDA C file to PTX with NVRTC (from the nvidia-cuda-nvrtc-cu12 wheel).

usage: nvrtc_compile.py SOURCE OUT_PTX OPTION...   (prints the NVRTC version)
"""

import ctypes
import os
import sys

import nvidia.cuda_nvrtc


def main() -> None:
    source, out, options = sys.argv[1], sys.argv[2], sys.argv[3:]
    libdir = os.path.join(os.path.dirname(nvidia.cuda_nvrtc.__file__), "lib")
    nvrtc = ctypes.CDLL(os.path.join(libdir, "libnvrtc.so.12"))

    def check(status: int, prog=None) -> None:
        if status != 0:
            nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
            msg = nvrtc.nvrtcGetErrorString(status).decode()
            if prog is not None:
                size = ctypes.c_size_t()
                nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
                log = ctypes.create_string_buffer(size.value)
                nvrtc.nvrtcGetProgramLog(prog, log)
                msg += "\n" + log.value.decode(errors="replace")
            sys.exit(f"{source}: NVRTC: {msg}")

    major, minor = ctypes.c_int(), ctypes.c_int()
    check(nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)))
    with open(source, "rb") as f:
        text = f.read()
    prog = ctypes.c_void_p()
    name = os.path.basename(source).encode()
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), text, name, 0, None, None))
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    check(nvrtc.nvrtcCompileProgram(prog, len(options), opts), prog)
    size = ctypes.c_size_t()
    check(nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size)))
    ptx = ctypes.create_string_buffer(size.value)
    check(nvrtc.nvrtcGetPTX(prog, ptx))
    nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
    with open(out, "wb") as f:
        f.write(ptx.value)
    print(f"{major.value}.{minor.value}")


if __name__ == "__main__":
    main()
