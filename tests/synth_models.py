"""Old name of harness.synth_models (bench/harness/synth_models.py), kept only for
tests/test_realtime_parts.py until that file is split (issue 19); import harness.synth_models."""

from harness.synth_models import contract_model, sine_decoder

__all__ = ["contract_model", "sine_decoder"]
