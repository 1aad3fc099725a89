"""Build the API reference from the docstrings with pdoc; any warning fails the build.

uv run --group docs python .ci/api_reference.py [OUTPUT_FOLDER]   # default: build/api
"""

import pkgutil
import re
import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

NAMED_TUPLE_INIT = re.compile(
    r"Error parsing type annotation (.* for [\w.]+\.__init__\. Import of \w+ failed"
    r"|optax\.OptState .* Import of ArrayTree failed)"  # optax's own alias, not resolvable outside optax
)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/api")
    pdoc.render.configure(docformat="google", show_source=False)
    import rnn_jax

    # The package's __all__ names its public functions, not its subpackages: give each part.
    modules = ["rnn_jax"] + [f"rnn_jax.{m.name}" for m in pkgutil.iter_modules(rnn_jax.__path__)]
    # (rnn_jax.loss and rnn_jax.unroll share their names with functions of __all__: already in.)
    modules = ["rnn_jax"] + [
        m for m in modules[1:] if m.rsplit(".", 1)[1] not in ("__main__", *rnn_jax.__all__)
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules, output_directory=out)
    ours = [w for w in caught if "pdoc" in w.filename or "rnn_jax" in str(w.message)]
    # A NamedTuple's generated __init__ lives in no module of ours, so pdoc cannot resolve the
    # string annotations it copies from the class; the class's own fields are documented.
    ours = [w for w in ours if not NAMED_TUPLE_INIT.match(str(w.message))]
    for w in ours:
        print(f"warning: {w.message}", file=sys.stderr)
    pages = sorted(out.rglob("*.html"))
    print(f"API reference: {len(pages)} pages in {out}, {len(ours)} warnings")
    return 1 if ours or not pages else 0


if __name__ == "__main__":
    sys.exit(main())
