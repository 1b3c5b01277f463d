"""A chat with images for a GGUF model that has no multimodal projector is refused up front.

llama-server without ``--mmproj`` answers such a request with a 500 ("image input is not
supported"), after the model is loaded; DMR users met it as issues #122/#162. The store knows
before anything loads (``Model.reads_images``, the one rule every dialect applies).
"""

from modelrunner import ModelRunnerError

IMAGE_PARTS = ("image_url", "input_image", "image")


def has_images(data):
    """Whether an OpenAI chat body carries an image part (any shape a runner would read)."""
    messages = data.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") in IMAGE_PARTS
                                             for p in content):
            return True
    return False


def refuse_images_without_projector(runtime, data):
    """Raise a 400 when ``data`` (a chat request) sends images to a GGUF model that has no
    multimodal projector layer."""
    if not has_images(data):
        return
    if not runtime.find_model(data.get("model")).reads_images:
        raise ModelRunnerError(
            f"model {data.get('model')} cannot read images: it has no multimodal projector "
            f"(package one with `model package --mmproj FILE`)", status=400)
