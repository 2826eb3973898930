"""Running the accelerator on a user's images: ``classify`` (one small API with
interchangeable backends) and ``evaluate`` (accuracy and fidelity on a folder)."""
