"""Import Megatron-Core without its import-time warnings about absent Transformer Engine and apex.

Megatron-Core warns at import ("Apex is not installed. Falling back to Torch Norm", "Transformer
Engine and Apex are not installed ...") from several modules. Those say nothing a user of this
package can act on (the backend choice is explicit in `ModelConfig.transformer_impl`), so the modules
that warn are imported once here with exactly those messages filtered; every other warning stays.
"""

from __future__ import annotations

import functools
import warnings

_BACKEND_FALLBACK_MESSAGES = r".*(Apex|Transformer Engine).* (is|are) not installed.*"


@functools.cache
def import_megatron_quietly() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BACKEND_FALLBACK_MESSAGES, category=UserWarning)
        import megatron.core.distributed  # noqa: F401
        import megatron.core.models.backends  # noqa: F401
        import megatron.core.models.gpt.gpt_layer_specs  # noqa: F401
        import megatron.core.optimizer  # noqa: F401
