"""Request parameters checked in OpenAI's words: ``RequestError`` and the type and bound checks.

Shared by the chat routes' bounds (``limits``) and the Responses API's validation
(``responses.validation``), so that both refuse a bad parameter the same way: 400 (or the status
given) in OpenAI's error shape, with the ``param`` at fault and a ``code`` as OpenAI's API names
it (``invalid_type``, ``decimal_below_min_value``, ...). It lives outside the ``responses``
package so that the chat routes use it without importing the Responses API.
"""

from modelrunner import ModelRunnerError


class RequestError(ModelRunnerError):
    """A request that cannot be answered: 400 (or ``status``) in OpenAI's error shape, with the
    ``param`` at fault and OpenAI's ``code`` (the OpenAI dialect renders it)."""

    def __init__(self, message, param=None, status=400, code=None):
        super().__init__(message, status=status, param=param, code=code)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def type_error(param, expected, value):
    return RequestError(f"Invalid type for '{param}': expected {expected}, but got "
                        f"{type(value).__name__} {value!r} instead.", param, code="invalid_type")


def number(data, param, low=None, high=None, integer=False):
    """``data[param]``, if present, is a number (an integer if ``integer``) within the bounds."""
    value = data.get(param)
    if value is None:
        return
    if not (_is_integer(value) if integer else _is_number(value)):
        raise type_error(param, "an integer" if integer else "a number", value)
    kind = "integer" if integer else "decimal"
    if low is not None and value < low:
        raise RequestError(f"Invalid '{param}': {kind} below minimum value. Expected a value >= "
                           f"{low}, but got {value} instead.", param,
                           code=f"{kind}_below_min_value")
    if high is not None and value > high:
        raise RequestError(f"Invalid '{param}': {kind} above maximum value. Expected a value <= "
                           f"{high}, but got {value} instead.", param,
                           code=f"{kind}_above_max_value")


def string(data, param, max_length=None, values=None):
    value = data.get(param)
    if value is None:
        return
    if not isinstance(value, str):
        raise type_error(param, "a string", value)
    if max_length is not None and len(value) > max_length:
        raise RequestError(f"Invalid '{param}': string too long. Expected a string with maximum "
                           f"length {max_length}, but got a string with length {len(value)} "
                           "instead.", param, code="string_above_max_length")
    if values is not None and value not in values:
        raise RequestError(f"Invalid value for '{param}': {value!r}. Supported values are: "
                           + ", ".join(repr(v) for v in values) + ".", param,
                           code="invalid_value")


def boolean(data, param):
    value = data.get(param)
    if value is not None and not isinstance(value, bool):
        raise type_error(param, "a boolean", value)


def obj(data, param):
    value = data.get(param)
    if value is not None and not isinstance(value, dict):
        raise type_error(param, "an object", value)
    return value or {}
