#include "storage/envelope_codec.h"

#define ZSTD_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>

namespace doppel::storage {

struct EnvelopeCodec::Impl {
  int level;
  uint64_t max_decoded;
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  ZSTD_CDict* encode_dict = nullptr;
  std::map<uint32_t, ZSTD_DDict*> ddicts;
  std::string scratch;

  ~Impl() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    ZSTD_freeCDict(encode_dict);
    for (auto& [id, d] : ddicts) ZSTD_freeDDict(d);
  }
};

std::string TrainDictionary(const std::vector<std::string>& samples, size_t max_bytes) {
  if (samples.size() < 16) return {};
  std::string joined;
  std::vector<size_t> sizes;
  sizes.reserve(samples.size());
  for (const auto& s : samples) {
    joined += s;
    sizes.push_back(s.size());
  }
  std::string dict(max_bytes, '\0');
  size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), joined.data(), sizes.data(),
                                   static_cast<unsigned>(sizes.size()));
  if (ZDICT_isError(n)) return {};
  dict.resize(n);
  return dict;
}

uint32_t DictionaryId(std::string_view dictionary) {
  if (dictionary.empty()) return 0;
  return ZDICT_getDictID(dictionary.data(), dictionary.size());
}

uint64_t DecodedSize(std::string_view value) {
  if (value.empty()) return 0;
  if (static_cast<unsigned char>(value[0]) == kCodecRaw) return value.size() - 1;
  if (static_cast<unsigned char>(value[0]) != kCodecZstd) return 0;
  unsigned long long n = ZSTD_getFrameContentSize(value.data() + 1, value.size() - 1);
  return (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN) ? 0 : n;
}

EnvelopeCodec::EnvelopeCodec(int level, uint64_t max_decoded_bytes) : impl_(new Impl) {
  impl_->level = level;
  impl_->max_decoded = max_decoded_bytes;
  impl_->cctx = ZSTD_createCCtx();
  impl_->dctx = ZSTD_createDCtx();
}

EnvelopeCodec::~EnvelopeCodec() = default;

Status EnvelopeCodec::AddDictionary(std::string_view dictionary, bool use_for_encoding) {
  if (dictionary.empty()) return Status::Ok();
  uint32_t id = DictionaryId(dictionary);
  if (id == 0) return Status::Corruption("dictionary has no zstd dictionary id");
  if (!impl_->ddicts.count(id)) {
    ZSTD_DDict* d = ZSTD_createDDict(dictionary.data(), dictionary.size());
    if (!d) return Status::Corruption("dictionary " + std::to_string(id) + " does not load");
    impl_->ddicts[id] = d;
  }
  if (use_for_encoding) {
    ZSTD_freeCDict(impl_->encode_dict);
    impl_->encode_dict = ZSTD_createCDict(dictionary.data(), dictionary.size(), impl_->level);
    if (!impl_->encode_dict) return Status::Internal("cannot load compression dictionary");
  }
  return Status::Ok();
}

bool EnvelopeCodec::HasDictionary(uint32_t dict_id) const {
  return impl_->ddicts.count(dict_id) > 0;
}

void EnvelopeCodec::EncodeRaw(const doppel::v1::Envelope& envelope, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>(kCodecRaw));
  envelope.AppendToString(out);
}

Status EnvelopeCodec::EncodeZstd(const doppel::v1::Envelope& envelope, std::string* out) {
  impl_->scratch.clear();
  envelope.AppendToString(&impl_->scratch);
  return EncodeZstdSerialized(impl_->scratch, out);
}

Status EnvelopeCodec::EncodeZstdSerialized(std::string_view serialized, std::string* out) {
  out->resize(1 + ZSTD_compressBound(serialized.size()));
  (*out)[0] = static_cast<char>(kCodecZstd);
  size_t n;
  if (impl_->encode_dict) {
    n = ZSTD_compress_usingCDict(impl_->cctx, out->data() + 1, out->size() - 1, serialized.data(),
                                 serialized.size(), impl_->encode_dict);
  } else {
    n = ZSTD_compressCCtx(impl_->cctx, out->data() + 1, out->size() - 1, serialized.data(),
                          serialized.size(), impl_->level);
  }
  if (ZSTD_isError(n)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(n));
  out->resize(1 + n);
  return Status::Ok();
}

Status EnvelopeCodec::Decode(std::string_view value, doppel::v1::Envelope* envelope) {
  if (value.empty()) return Status::Corruption("empty value");
  const auto tag = static_cast<unsigned char>(value[0]);
  std::string_view payload = value.substr(1);
  if (tag == kCodecRaw) {
    if (payload.size() > impl_->max_decoded)
      return Status::Corruption("value of " + std::to_string(payload.size()) +
                                " bytes is over the decode limit");
    if (!envelope->ParseFromArray(payload.data(), static_cast<int>(payload.size())))
      return Status::Corruption("not a valid envelope (protobuf parse failed)");
    return Status::Ok();
  }
  if (tag != kCodecZstd)
    return Status::Unsupported("value codec tag " + std::to_string(tag) +
                               " is unknown (written by a newer doppel?)");
  unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return Status::Corruption("not a zstd frame");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN)
    return Status::Corruption("zstd frame without content size (not written by doppel)");
  if (size > impl_->max_decoded)
    return Status::Corruption("frame would decode to " + std::to_string(size) +
                              " bytes, over the limit of " + std::to_string(impl_->max_decoded));
  // The content size is only the header's claim. A zstd block yields at most 128 KiB and
  // takes at least its 3-byte header (RFC 8878 3.1.1.2), so n bytes of frame cannot hold more
  // than (n / 3 + 1) * 128 KiB: a short corrupt value must not make us allocate and zero up to
  // the limit before decompression fails (found by fuzzing, tests/fuzz/envelope_decode).
  if (size > (payload.size() / 3 + 1) * (128ull << 10))
    return Status::Corruption("zstd frame of " + std::to_string(payload.size()) + " bytes claims " +
                              std::to_string(size) + " decoded bytes (corrupt or truncated)");
  uint32_t dict_id = ZSTD_getDictID_fromFrame(payload.data(), payload.size());
  ZSTD_DDict* ddict = nullptr;
  if (dict_id != 0) {
    auto it = impl_->ddicts.find(dict_id);
    if (it == impl_->ddicts.end())
      return Status::Corruption("frame needs dictionary " + std::to_string(dict_id) +
                                " which is missing");
    ddict = it->second;
  }
  impl_->scratch.resize(size);
  size_t n = ddict ? ZSTD_decompress_usingDDict(impl_->dctx, impl_->scratch.data(), size,
                                                payload.data(), payload.size(), ddict)
                   : ZSTD_decompressDCtx(impl_->dctx, impl_->scratch.data(), size, payload.data(),
                                         payload.size());
  if (ZSTD_isError(n)) return Status::Corruption(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != size) return Status::Corruption("zstd frame shorter than its declared size");
  if (!envelope->ParseFromArray(impl_->scratch.data(), static_cast<int>(n)))
    return Status::Corruption("not a valid envelope (protobuf parse failed)");
  return Status::Ok();
}

}  // namespace doppel::storage
