"""Hand-written hardware sources: HLS C++ kernels and the Verilog library (package data)."""
