// RoPE's parameters as transformers' modeling_rope_utils reads them (rope_parameters, or the
// older rope_theta and rope_scaling); read by a family's typed config, used by the layer library.
#pragma once

#include <cstdint>
#include <string>

namespace shardplan {

struct RopeParameters {
  std::string type = "default";        // default, linear, llama3 (others: not run by the executor)
  double theta = 10000.0;
  double factor = 1.0;                 // linear, llama3
  double low_freq_factor = 1.0;        // llama3
  double high_freq_factor = 4.0;       // llama3
  int64_t original_max_positions = 0;  // llama3 (default: max_position_embeddings)
};

}  // namespace shardplan
