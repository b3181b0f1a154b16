// Tensor names that differ between two Hub layouts of the same model (llava), so a lookup by one
// layout's name finds a checkpoint saved in the other.
#pragma once

#include <optional>
#include <string>

namespace shardplan {

// llava checkpoints exist in two layouts. The classic one (llava-hf before transformers 4.52,
// and the names our model graph uses) and the newer one that save_pretrained writes today:
//
//   classic                          newer
//   language_model.model.*           model.language_model.*
//   language_model.lm_head.weight    lm_head.weight
//   vision_tower.*                   model.vision_tower.*
//   multi_modal_projector.*          model.multi_modal_projector.*
//
// Returns the name in the other layout, either direction, or nullopt when the name has none.
// E.g. "language_model.model.layers.0.mlp.up_proj.weight" <-> "model.language_model.layers.0.mlp.up_proj.weight".
// NOTE: "lm_head.weight" maps to "language_model.lm_head.weight" for any model; a checkpoint looks
// the alternate up only when the name itself is absent, so other families are not affected.
std::optional<std::string> llava_alternate_hub_name(const std::string& name);

}  // namespace shardplan
