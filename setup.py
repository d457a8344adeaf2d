"""The one compiled part: the audio mixer (dkvae_live/_mixer.c). Everything else is in
pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dkvae_live._mixer",
            ["dkvae_live/_mixer.c"],
            extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra"],
            libraries=["m"],
        )
    ]
)
