// The family table (see models/graph/family.h). A new family adds its entry here and its forward
// in models/forward/forward_table.cc.
#include "models/graph/family.h"

#include "models/llama/llama_graph.h"
#include "models/llava/llava_graph.h"
#include "models/mixtral/mixtral_graph.h"
#include "models/qwen2_moe/qwen2_moe_graph.h"
#include "models/whisper/whisper_graph.h"

namespace shardplan {

const std::vector<const Family*>& family_table() {
  static const std::vector<const Family*> table = {&llama_family(), &mixtral_family(), &qwen2_moe_family(),
                                                   &llava_family(), &whisper_family()};
  return table;
}

const Family* find_family(const std::string& name) {
  for (const Family* family : family_table()) {
    if (family->name == name) return family;
  }
  return nullptr;
}

const Family* family_of_model_type(const std::string& model_type) {
  for (const Family* family : family_table()) {
    for (const std::string& type : family->model_types) {
      if (type == model_type) return family;
    }
  }
  return nullptr;
}

}  // namespace shardplan
