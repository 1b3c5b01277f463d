"""DMR's native HTTP API: model management and engine control."""
