"""ComponentResources: one concern per module, each built from the validated, frozen model."""
