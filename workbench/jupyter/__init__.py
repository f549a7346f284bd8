"""The notebook face: magics and display helpers (thin: they call the runtime)."""
