"""Adapters to RL trainers' own environment interfaces. Each module imports its trainer
lazily and is optional: ``pip install 'infragym[verifiers]'`` for :mod:`.verifiers`."""
