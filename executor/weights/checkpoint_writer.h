// Deterministic random checkpoints in the Hugging Face Hub layout, for any config the model layer
// knows: the same seed gives the same bytes on every platform, whatever the sharding into files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "executor/weights/weights_error.h"
#include "models/graph/model_graph.h"

namespace shardplan {

inline constexpr uint64_t kDefaultMaxShardBytes = 2ull << 30;  // 2 GiB

// What write_random_checkpoint wrote.
struct WrittenCheckpoint {
  std::vector<std::string> files;  // the .safetensors files, then the index (when split), then config.json
  int64_t tensors = 0;
  uint64_t tensor_bytes = 0;       // sum of the tensors' bytes, the index's metadata.total_size
};

// Writes `dir`/model.safetensors when the tensors total at most `max_shard_bytes`, else
// model-0000K-of-0000N.safetensors files (filled in graph order, a new file when the next tensor
// would pass the limit; a tensor larger than the limit gets a file alone) and
// model.safetensors.index.json {"metadata": {"total_size", "total_parameters"}, "weight_map"}.
// Then config.json: the graph's config with torch_dtype set to `dtype`, as save_pretrained writes it.
//
// Each file is as safetensors' reference writer makes it: __metadata__ {"format": "pt"} first, then
// the tensors sorted by name, data in the same order, the header padded with spaces to a multiple
// of 8 bytes. A tied lm_head is written once (under the tensor it is tied to).
//
// Refused (kIo) before anything is written when the file system has less free space than the
// tensors need. Files are written under a temporary name and renamed when complete; under an
// InterruptGuard (base/interrupt.h) a signal stops the write at the next MiB and the temporary
// files are removed (Interrupted, exit 128 + the signal). Stale files of an earlier
// checkpoint in `dir` (model*.safetensors shards, the index) that this one does not rewrite are
// removed, as save_pretrained does, so the directory never mixes two checkpoints.
// Throws WeightsError: kIo when `dir` cannot be created or written, kInvalid for a graph whose
// shapes make no sense (a negative dimension, an overflowing size) or that has no config object.
WrittenCheckpoint write_random_checkpoint(const ModelGraph& graph, const std::string& dir, uint64_t seed,
                                          DType dtype, uint64_t max_shard_bytes = kDefaultMaxShardBytes);

// The float32 value of element `index` (row-major) of tensor `name` before conversion to the
// checkpoint's dtype. A counter-based stream (splitmix64 of a key made from the seed and an FNV-1a
// hash of the name), so values depend on neither file order nor sharding:
//   norm weights (names ending in "norm.weight", "norm1.weight", "norm2.weight"): 1 + u,  std(u) 0.02
//   biases (".bias"):                                                              u,      std(u) 0.01
//   everything else (matrices, embeddings, convolutions):                          u,      std(u) 0.02
// with u uniform and symmetric. NOTE: biases are small but not zero, so that a sharding bug that
// adds a row-parallel bias on every rank shows up in `executor run --verify`.
float random_weight(const std::string& name, uint64_t seed, int64_t index);

// "2147483648", "2GiB", "500MB", "5gb" -> bytes (KB/MB/GB/TB powers of 1000 and KiB/MiB/GiB/TiB
// powers of 1024, case-insensitive, as transformers' max_shard_size); nullopt for anything else,
// for 0 and on overflow.
std::optional<uint64_t> parse_byte_size(const std::string& text);

}  // namespace shardplan
