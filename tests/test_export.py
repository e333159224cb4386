"""zoo.export and `zoo.translate --engine ctranslate2`: a zoo Transformer exported to CTranslate2 scores every target
token as ours does (post-LN and pre-LN, sinusoidal and learned positions, shared embeddings), translates greedily
exactly as ours at fp32, and anything it cannot represent is refused in one line."""
import pytest
import torch

from zoo.data.tokenizer import Tokenizer
from zoo.decoding import greedy_search
from zoo.errors import UserError
from zoo.export import check_exportable, export
from zoo.models import REGISTRY, Transformer

ctranslate2 = pytest.importorskip("ctranslate2", reason="the deploy (or bench) extra installs ctranslate2")

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)
WORDS = [f"w{i}" for i in range(30)]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([" ".join(WORDS)], kind="word", vocab_size=100, min_frequency=1)


def random_transformer(tok: Tokenizer, **options) -> Transformer:
    torch.manual_seed(0)
    net = Transformer(src_vocab_size=len(tok), tgt_vocab_size=len(tok), pad_id=tok.pad_id, d_model=32, n_heads=4,
                      d_ff=64, n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, **options).eval()
    with torch.no_grad():  # larger weights than at initialisation, so that the outputs depend on every one of them
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


def padded(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), pad_id)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def random_ids(n: int, seed: int, tok: Tokenizer) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    first = len(tok) - len(WORDS)
    return [torch.randint(first, len(tok), (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


@pytest.mark.parametrize("options", [
    {},  # the paper's post-LN, sinusoidal positions
    {"pre_norm": True},
    {"positions": "learned", "max_positions": 64},
    {"share_all_embeddings": True, "pre_norm": True},
])
def test_every_target_token_gets_our_log_probability(tok, tmp_path, options):
    net = random_transformer(tok, **options)
    model_dir = export(net, tok, tok, tmp_path / "ct2")
    sources, targets = random_ids(8, 0, tok), random_ids(8, 1, tok)
    scored = ctranslate2.Translator(str(model_dir), compute_type="float32").score_batch(
        [tok.pieces(s) for s in sources], [tok.pieces(t) for t in targets])
    src = padded(sources, tok.pad_id)
    tgt_in = padded([[tok.bos_id, *t] for t in targets], tok.pad_id)
    tgt_out = padded([[*t, tok.eos_id] for t in targets], tok.pad_id)
    with torch.no_grad():
        logp = net(src, src != tok.pad_id, tgt_in).log_softmax(-1).gather(-1, tgt_out.unsqueeze(-1)).squeeze(-1)
    for row, (target, result) in enumerate(zip(targets, scored)):
        assert result.tokens == [*tok.pieces(target), "<eos>"]
        torch.testing.assert_close(torch.tensor(result.log_probs), logp[row, : len(target) + 1], atol=1e-4, rtol=0)


def test_greedy_translations_are_ours_at_fp32(tok, tmp_path):
    from zoo.export import translate
    net = random_transformer(tok)
    with torch.no_grad():  # words or EOS only, so that outputs differ in more than their length
        net.decoder.out.bias[[tok.pad_id, tok.bos_id, tok.unk_id]] = -1e4
    sources = random_ids(40, 2, tok)
    limits = [len(s) + 5 for s in sources]
    with torch.no_grad():
        ours = [greedy_search(net, padded([s], tok.pad_id), torch.ones(1, len(s), dtype=torch.bool),
                              bos_id=tok.bos_id, eos_id=tok.eos_id, max_len_a=1.0, max_len_b=5)[0]
                for s in sources]
    theirs = translate(export(net, tok, tok, tmp_path / "ct2"), [tok.pieces(s) for s in sources], beam_size=1,
                       alpha=0.0, limits=limits)
    assert [tok.pieces(h) for h in ours] == theirs
    assert len({tuple(h) for h in ours}) > 25  # the outputs differ, so the comparison is not of one constant


def test_an_output_that_ends_at_once_is_empty_there_too(tok, tmp_path):
    """EOS first: ours decodes nothing, and so must the engine (whose default minimum length is 1)."""
    from zoo.export import translate
    net = random_transformer(tok)
    with torch.no_grad():
        net.decoder.out.bias[tok.eos_id] = 1e4
    sources = random_ids(3, 4, tok)
    assert translate(export(net, tok, tok, tmp_path / "ct2"), [tok.pieces(s) for s in sources], beam_size=1,
                     alpha=0.0, limits=[5, 5, 5]) == [[], [], []]


@pytest.mark.parametrize("options, named", [
    ({"positions": "rotary"}, "encoder has rotary"),
    ({"positions": "alibi"}, "encoder has a positional attention bias"),
    ({"positions": "t5"}, "encoder has a positional attention bias"),
    ({"decoder_positions": "none"}, "decoder has no positions"),
])
def test_positions_it_cannot_take_are_refused_in_one_line(tok, tmp_path, options, named):
    with pytest.raises(UserError, match=named) as error:
        export(random_transformer(tok, **options), tok, tok, tmp_path / "ct2")
    assert "\n" not in str(error.value) and not (tmp_path / "ct2").exists()


@pytest.mark.parametrize("arch", [a for a in REGISTRY if a != "transformer"])
def test_other_architectures_are_refused_in_one_line(tok, arch):
    net = REGISTRY[arch].cls(**{**REGISTRY[arch].small, "src_vocab_size": len(tok), "tgt_vocab_size": len(tok),
                                "pad_id": tok.pad_id})
    with pytest.raises(UserError, match=f"CTranslate2 export takes a Transformer, not {type(net).__name__}"):
        check_exportable(net)


def test_an_existing_directory_is_never_overwritten(tok, tmp_path):
    (tmp_path / "ct2").mkdir()
    (tmp_path / "ct2" / "mine.txt").write_text("kept")
    with pytest.raises(UserError, match="already exists"):
        export(random_transformer(tok), tok, tok, tmp_path / "ct2")
    assert (tmp_path / "ct2" / "mine.txt").read_text() == "kept"


def test_the_export_command_writes_a_model_the_engine_loads_and_refuses_in_one_line(tmp_path, capsys):
    from test_translate import write_checkpoint

    from zoo.export import main
    ckpt = write_checkpoint(tmp_path / "words.ckpt")
    assert main([str(ckpt), str(tmp_path / "ct2"), "--quantization", "int8"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'ct2'}\n"
    source = Tokenizer.load(tmp_path / "ct2" / "source_tokenizer.json")  # written beside the model
    assert source.pieces(source.encode("s1 s2")) == ["s1", "s2"]
    translator = ctranslate2.Translator(str(tmp_path / "ct2"), compute_type="int8")
    assert len(translator.translate_batch([["s1", "s2"]], beam_size=1, max_decoding_length=5)) == 1
    assert main([str(ckpt), str(tmp_path / "ct2")]) == 1
    assert capsys.readouterr().err == (f"error: {tmp_path / 'ct2'} already exists; CTranslate2 export writes a new "
                                       "directory\n")
    assert main([str(ckpt), str(tmp_path / "other"), "--quantization", "int3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --quantization int3: ") and err.count("\n") == 1 and not (tmp_path / "other").exists()
