"""Running the accelerator on a user's images: ``classify`` (one small API with
interchangeable backends), ``evaluate`` (accuracy and fidelity on a folder) and ``board``
(the PYNQ driver of the AXI-wrapped network behind ``--backend board``)."""
