"""A chat with images for a GGUF model that has no multimodal projector is refused up front.

llama-server without ``--mmproj`` answers such a request with a 500 ("image input is not
supported"), after the model is loaded; DMR users met it as issues #122/#162. The store knows
before anything loads (``Model.reads_images``, the one rule every dialect applies).
"""

from modelrunner import ModelRunnerError, chat_has_images


def refuse_images_without_projector(runtime, data):
    """Raise a 400 when ``data`` (a chat request) sends images to a GGUF model that has no
    multimodal projector layer."""
    if not chat_has_images(data):
        return
    if not runtime.find_model(data.get("model")).reads_images:
        raise ModelRunnerError(
            f"model {data.get('model')} cannot read images: it has no multimodal projector "
            f"(package one with `model package --mmproj FILE`)", status=400)
