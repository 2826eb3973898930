"""Boards: the Vivado block design around the AXI-wrapped network top (``make bitstream``).

``hls.board.boards`` is the table of supported boards (part, board part, the Zynq
UltraScale+ PS ports the design uses); ``hls.board.bitstream`` writes the Vivado project
scripts, runs Vivado where it is installed and reads its utilisation and timing reports.
"""
