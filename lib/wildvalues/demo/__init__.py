"""Demo and test support: a synthetic conversation generator and a local Messages/Batches API emulator."""
