"""The zoo's architectures behind one interface (`zoo.models.base`). Importing this package imports every module in
it, so that each architecture's file has registered it (`zoo.models.registry`); it needs only torch."""
import importlib
import pkgutil

from zoo.models.attention import AttentionEncoderDecoder
from zoo.models.base import Decoder, Encoder, EncoderDecoder, State
from zoo.models.gru import GRUEncoderDecoder
from zoo.models.registry import REGISTRY, Architecture, architectures, of_class
from zoo.models.transformer import Transformer

for _module in pkgutil.iter_modules(__path__):  # an architecture added as a new file registers itself here
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Architecture", "AttentionEncoderDecoder", "Decoder", "Encoder", "EncoderDecoder",
           "GRUEncoderDecoder", "State", "Transformer", "architectures", "of_class"]
