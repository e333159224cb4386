"""The three architectures behind one interface (`zoo.models.base`). Importing this package needs only torch."""
from zoo.models.attention import AttentionEncoderDecoder
from zoo.models.base import Decoder, Encoder, EncoderDecoder, State
from zoo.models.gru import GRUEncoderDecoder
from zoo.models.transformer import Transformer

__all__ = ["AttentionEncoderDecoder", "Decoder", "Encoder", "EncoderDecoder", "GRUEncoderDecoder", "State",
           "Transformer"]
