"""Network impairments applied on the lab's router: model, backend choice, commands as data."""

from .backends import (Command, Plan, UnsupportedImpairment, describe_backends, plan,
                       transition)
from .model import KINDS, Capabilities, GilbertElliott, Impairment, Link

__all__ = ["KINDS", "Capabilities", "Command", "GilbertElliott", "Impairment", "Link", "Plan",
           "UnsupportedImpairment", "describe_backends", "plan", "transition"]
