"""The open RTL backend: generation passes over the block graph, memory images, the Yosys
driver and the adapter for vendor-exported RTL."""
