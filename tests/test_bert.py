"""Our transformers-free BERT (the shipped model's MiniLM text encoder) against transformers' BertModel."""

from __future__ import annotations

import torch

from prestissimo.models.bert import BertEncoder, FastTokenizer, is_plain_bert

WORDS = ["a", "slow", "piano", "melody", "in", "c", "major", "rain", "on", "tin", "roof", "##s", "##ing", "wind"]


def _tiny_bert(folder):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=64)).eval()
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return model, fast


def test_bert_matches_transformers_including_truncation_and_unknown_words(tmp_path):
    reference, reference_tokenizer = _tiny_bert(tmp_path)
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

    _tiny_bert(tmp_path / "enc")
    cond = TextEncoderConditioner(8, model_name="enc", max_length=12, model_dir=tmp_path)
    assert isinstance(cond.encoder, BertEncoder)  # the fast path was taken
    emb, mask = cond(["a slow piano melody"], "cpu")
    assert emb.shape == (1, 12, 8) and mask.sum() == 6 and torch.isfinite(emb).all()
    assert emb[0, 6:].abs().max() == 0  # padding carries no features
