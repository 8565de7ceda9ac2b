"""SymptomGen: fine-tune GPT-2-family models on disease → symptoms data and explore them.

The package is the engine; ``app.py`` (Gradio) and ``python -m symptomgen`` (CLI)
are two thin doors onto it.  Importing it is cheap: no model or data is loaded.
"""

__version__ = "0.1.0"

NOT_MEDICAL_ADVICE = ("Generated text comes from a small language model trained on a short list of diseases. "
                      "It is not medical advice: ask a qualified clinician about symptoms or treatment.")


def quiet_libraries() -> None:
    """Silence per-file progress bars and info logs from transformers/datasets (we report our own)."""
    from .settings import set_library_defaults

    set_library_defaults()
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        import datasets

        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    except ImportError:  # datasets is optional for local files
        pass
