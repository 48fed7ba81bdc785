"""configplane: plain-Python configuration model, CLI and offline tooling (no Pulumi resources)."""
