"""Our transformers-free BERT (the shipped model's MiniLM text encoder) against transformers' BertModel."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, BertModel

from prestissimo.models.bert import BertEncoder, create_tiny_bert
from prestissimo.models.text_encoder_files import FastTokenizer, is_plain_bert


def test_bert_matches_transformers_including_truncation_and_unknown_words(tmp_path):
    create_tiny_bert(tmp_path)
    reference, reference_tokenizer = BertModel.from_pretrained(tmp_path).eval(), AutoTokenizer.from_pretrained(tmp_path)
    assert is_plain_bert(tmp_path)
    texts = ["A slow piano melody in C major", "rain on tin roofs, zxqv 雨 🌧️", " ".join(["wind"] * 40)]
    ours = FastTokenizer(tmp_path)(texts, truncation=True, max_length=16, padding="max_length", return_tensors="pt")
    theirs = reference_tokenizer(texts, truncation=True, max_length=16, padding="max_length", return_tensors="pt")
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    encoder = BertEncoder.from_folder(tmp_path)
    with torch.no_grad():
        a = encoder(ours["input_ids"], ours["attention_mask"])["last_hidden_state"]
        b = reference(input_ids=theirs["input_ids"], attention_mask=theirs["attention_mask"]).last_hidden_state
    real = ours["attention_mask"].bool()
    torch.testing.assert_close(a[real], b[real], rtol=1e-4, atol=1e-5)


def test_a_text_conditioner_on_a_bert_folder_skips_transformers_and_gives_the_same_features(tmp_path):
    from prestissimo.models.conditioners import TextEncoderConditioner

    create_tiny_bert(tmp_path / "enc")
    cond = TextEncoderConditioner(8, model_name="enc", max_length=12, model_dir=tmp_path)
    assert isinstance(cond.encoder, BertEncoder)  # the fast path was taken
    emb, mask = cond(["a slow piano melody"], "cpu")
    assert emb.shape == (1, 12, 8) and mask.sum() == 6 and torch.isfinite(emb).all()
    assert emb[0, 6:].abs().max() == 0  # padding carries no features


def test_every_activation_a_bert_folder_may_name_is_implemented_by_both_encoders():
    from prestissimo.models.bert import ACTIVATIONS
    from prestissimo.models.text_encoder_files import BERT_ACTIVATIONS
    from prestissimo.runtime.lite.bert import ACTIVATIONS as LITE_ACTIVATIONS

    assert set(ACTIVATIONS) == set(BERT_ACTIVATIONS) == set(LITE_ACTIVATIONS)
