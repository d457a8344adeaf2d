"""Importers that turn real drum kits into :class:`~dkvae_training.bank.SoundSource` streams.

- :mod:`.hydrogen`: Hydrogen kits (``drumkit.xml`` and their samples, velocity layers kept);
- :mod:`.sf2`: SoundFont 2 drum presets (samples read from the SF2, labelled by GM drum note);
- :mod:`.folder`: folders of loose WAV/FLAC/AIFF files.

Feed what they yield to :func:`dkvae_training.bank.import_sources`.
"""
