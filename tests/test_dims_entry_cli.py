"""`--dim NAME=SIZE` for compile/summary/export/run, and entry points (`Model.output`) on the CLI."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import nndsl
from nndsl.cli import main
from nndsl.io import save_variables

BLOCK = """
model BasicBlock(ch: int, stride: int = 1) {
  input x: [batch, h, w, c]
  y = x -> conv2d(ch, 3, stride=stride, padding="same", bias=false) -> batchnorm -> relu
  skip = if stride != 1 or c != ch then x -> conv2d(ch, 1, stride=stride, bias=false) -> batchnorm else x
  output out = relu(y + skip)
}

model Classifier {
  input tokens: i32[batch, time]
  output logits = tokens -> embed(20, 8) -> global_avg_pool -> dense(3)
}
"""

S2S = """
import cells
model S2S(vocab: int = 6, hidden: int = 8) {
  input src: i32[batch, time]
  input prev: i32[batch, time]
  emb = embed(vocab, 4)
  proj = dense(vocab)
  enc = src -> emb -> LSTM(hidden)
  dec = LSTM(hidden, h0=enc.h, c0=enc.c)
  output logits = prev -> emb -> dec -> proj
  output tokens = full(src, 0) -> unroll(dec, steps=time, emit=proj -> argmax, feed=emb)
  output sampled = full(src, 0) -> unroll(dec, steps=time, emit=proj -> sample(temperature=2.0), feed=emb)
}
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "block.nn").write_text(BLOCK)
    (tmp_path / "s2s.nn").write_text(S2S)
    return tmp_path


def test_graph_and_summary_of_a_block_need_and_take_dims(files, capsys):
    f = str(files / "block.nn")
    assert main(["compile", f, "BasicBlock", "--arg", "ch=16", "--emit", "graph"]) == 1
    err = capsys.readouterr().err
    assert "error[E352]" in err and "--dim" in err
    assert main(["compile", f, "BasicBlock", "--arg", "ch=16", "--dim", "c=8", "--dim", "h=4", "--dim", "w=4",
                 "--emit", "graph"]) == 0
    out = capsys.readouterr().out
    assert "f32[batch, 4, 4, 16]" in out and "conv2d_1" in out  # c != ch: the projection shortcut
    assert main(["summary", f, "BasicBlock", "--arg", "ch=8", "--dim", "c=8", "--dim", "h=4", "--dim", "w=4"]) == 0
    out = capsys.readouterr().out
    assert "conv2d_1" not in out and "[1, 4, 4, 8]" in out  # c == ch: the identity shortcut


def test_export_of_a_sequence_classifier_with_a_fixed_time(files, capsys):
    f = str(files / "block.nn")
    m = nndsl.load(f).model("Classifier")
    x = np.random.RandomState(0).randint(0, 20, (5, 12)).astype(np.int32)
    v = m.init(jax.random.key(0), x)
    save_variables(files / "c.safetensors", v)
    art = str(files / "c.jaxexport")
    assert main(["export", f, "Classifier", "--weights", str(files / "c.safetensors"), "-o", art]) == 1
    assert "error[E611]" in capsys.readouterr().err
    assert main(["export", f, "Classifier", "--dim", "time=12", "--weights", str(files / "c.safetensors"),
                 "-o", art]) == 0
    np.save(files / "x.npy", x)
    assert main(["run", art, "--input", str(files / "x.npy"), "--output", str(files / "y.npy")]) == 0
    np.testing.assert_allclose(np.load(files / "y.npy"), m.apply(v, x), rtol=1e-5, atol=1e-6)
    np.save(files / "x10.npy", x[:, :10])
    assert main(["run", f, "Classifier", "--dim", "time=12", "--weights", str(files / "c.safetensors"),
                 "--input", str(files / "x10.npy"), "--output", str(files / "y.npy")]) == 1
    assert "error[E672]" in capsys.readouterr().err


def test_decoding_entry_point_runs_and_exports_with_the_trained_instance_weights(files, capsys):
    f = str(files / "s2s.nn")
    prog = nndsl.load(f)
    src = np.random.RandomState(1).randint(1, 6, (4, 5)).astype(np.int32)
    v = prog.model("S2S").init(jax.random.key(3), src, src)
    save_variables(files / "net.safetensors", v)
    np.save(files / "src.npy", src)
    want = prog.model("S2S.tokens").apply(v, src)
    assert main(["run", f, "S2S.tokens", "--weights", str(files / "net.safetensors"), "--input",
                 str(files / "src.npy"), "--output", str(files / "t.npy")]) == 0
    np.testing.assert_array_equal(np.load(files / "t.npy"), want)
    art = str(files / "t.jaxexport")
    assert main(["export", f, "S2S.tokens", "--dim", "time=5", "--weights", str(files / "net.safetensors"),
                 "-o", art]) == 0
    assert main(["run", art, "--input", str(files / "src.npy"), "--output", str(files / "t2.npy")]) == 0
    np.testing.assert_array_equal(np.load(files / "t2.npy"), want)
    # a sampling entry: --seed picks the key, the same seed the same tokens
    outs = []
    for seed in ("1", "1", "2"):
        assert main(["run", f, "S2S.sampled", "--weights", str(files / "net.safetensors"), "--seed", seed,
                     "--input", str(files / "src.npy"), "--output", str(files / f"s{seed}.npy")]) == 0
        outs.append(np.load(files / f"s{seed}.npy"))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], prog.model("S2S.sampled").apply(v, src, rngs=jax.random.key(1)))
    assert main(["run", f, "S2S.tokenz", "--weights", str(files / "net.safetensors"), "--input",
                 str(files / "src.npy"), "--output", str(files / "t.npy")]) == 1
    assert "error[E670]" in capsys.readouterr().err


CHAR = """
import cells
model Chars(vocab: int, hidden: int = 16, length: int = 10, temperature: float = 1.0) {
  input chars: i32[batch, time]
  emb = embed(vocab, 8)
  rnn = GRU(hidden)
  proj = dense(vocab)
  output logits = chars -> emb -> rnn -> proj
  output text = chars -> unroll(rnn, steps=length, emit=proj -> sample(temperature=temperature), feed=emb)
}

train sonnets {
  data text("sonnets", batch=8, seq=16, stride=50, split=0.9)
  model net = Chars(vocab=data.vocab)
  loss ce = cross_entropy(net(data.x).logits, data.y)
  step net minimize ce with adam(lr=1e-3)
  iterations 1
}
"""


def test_sample_command_runs_the_in_language_sampler(tmp_path, capsys):
    f = tmp_path / "chars.nn"
    f.write_text(CHAR)
    prog = nndsl.load(f)
    trainer = prog.trainer()
    vocab = trainer.spec.data.vocab
    name, args = trainer.spec.models["net"]
    model = prog.model(name, **args)
    v = model.init(jax.random.key(0), np.zeros((1, 4), np.int32))
    v = jax.tree_util.tree_map(lambda a: a * 4.0, v)
    save_variables(tmp_path / "net.safetensors", v)
    texts = []
    for seed in ("3", "3"):
        assert main(["sample", str(f), "--weights", str(tmp_path / "net.safetensors"), "--prompt", "Shall I",
                     "--length", "12", "--temperature", "0.9", "--seed", seed]) == 0
        texts.append(capsys.readouterr().out.rstrip("\n"))
    assert texts[0] == texts[1] and texts[0].startswith("Shall I") and len(texts[0]) == len("Shall I") + 12
    # the same tokens as the model's own `text` output with the same key and arguments
    ids = np.asarray([[vocab.index(c) for c in "Shall I"]], np.int32)
    entry = prog.model(f"{name}.text", **{**args, "length": 12, "temperature": 0.9})
    want = entry.apply(v, ids, rngs=jax.random.key(3))[0]
    assert texts[0] == "Shall I" + "".join(vocab[i] for i in np.asarray(want))
