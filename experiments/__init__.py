"""Control-group design, assignment and readout for CX tests."""
