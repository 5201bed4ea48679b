"""A pytest plugin for mutation runs only (`[tool.mutmut]`, docs/mutation-testing.md).

Hypothesis stops at the first failing example instead of shrinking it. Under mutmut a
failure is the expected outcome, and shrinking it costs seconds to minutes per mutant (the
time-outs of the first run); which tests fail, and on which examples, does not change.
"""

from hypothesis import Phase, settings

settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("mutation")
