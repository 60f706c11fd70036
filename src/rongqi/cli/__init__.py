"""The `rongqi` engine command line: argv in, calls into image/, storage/ and engine/, text out.

Thin by design: no logic of its own beyond parsing and printing.
"""
