"""Build the optional C extension ``cep._prescan`` (everything else is in pyproject.toml).

The extension only makes file mode faster (cep/operator/prescan.py); when it cannot be
built (no C compiler or no Python headers) the install goes on without it and the pure
Python path is used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "cep._prescan",
            sources=["cep/_native/prescan.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
            optional=True,
        )
    ]
)
