// Plan -> JSON: the keys of spec-format.md §5 and a few more (spec, model, workload, per-collective
// consumer and stream, FLOPs).
#include "planner/plan/plan_json.h"

namespace shardplan {
namespace {

nlohmann::json layout_json(const ActivationLayout& l, const Mesh& mesh) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t x = 0; x < l.axes.size() && x < mesh.axes().size(); ++x) {
    j[mesh.axes()[x].name] = to_string(l.axes[x]);
  }
  return j;
}

}  // namespace

nlohmann::json plan_to_json(const Plan& plan) {
  using nlohmann::json;
  const Spec& spec = plan.spec();
  const Mesh& mesh = plan.mesh;
  json j;
  j["name"] = spec.name;
  j["spec"] = spec.file;
  j["model_type"] = plan.graph().model_type;
  j["dtype"] = to_string(spec.dtype);
  j["world_size"] = mesh.world_size();
  j["mesh"] = json::array();
  for (const auto& a : mesh.axes()) j["mesh"].push_back({{"name", a.name}, {"size", a.size}});
  j["batch_axes"] = spec.batch_axes;
  j["workload"] = {{"batch", spec.workload.batch},
                   {"prompt_tokens", spec.workload.prompt_tokens},
                   {"new_tokens", spec.workload.new_tokens},
                   {"images_per_request", spec.workload.images_per_request}};

  j["modules"] = json::array();
  for (const ModulePlan& mp : plan.modules) {
    json m = {{"path", mp.module->path},
              {"kind", to_string(mp.module->kind)},
              {"mode", to_string(mp.mode)},
              {"axes", mp.axes},
              {"rule_line", mp.rule_line},
              {"weight_bytes", mp.weight_bytes_max},
              {"input_layout", layout_json(mp.input_layout, mesh)},
              {"output_layout", layout_json(mp.output_layout, mesh)}};
    if (!mp.expert_owners.empty()) m["expert_owners"] = mp.expert_owners;
    if (mp.has_shared_expert) m["shared_expert"] = {{"mode", to_string(mp.shared_mode)}, {"axes", mp.shared_axes}};
    if (mp.side_stream) {
      m["side_stream"] = to_string(*mp.side_stream);
      m["merges_side"] = mp.merges_side;
    }
    j["modules"].push_back(std::move(m));
  }

  j["params"] = json::array();
  const std::string dtype = to_string(spec.dtype);
  for (const ParamPlan& p : plan.params) {
    json shards = json::array();
    for (int64_t r = 0; r < mesh.world_size(); ++r) {
      ShardSlice s = shard_for_rank(p, mesh, r);
      shards.push_back({{"rank", r}, {"offset", s.offset}, {"shape", s.shape}});
    }
    json param = {{"name", p.param->name},
                  {"module", plan.modules[p.module].module->path},
                  {"shape", p.param->shape},
                  {"dtype", dtype},
                  {"layout", p.layout.dims},
                  {"shards", std::move(shards)}};
    if (!p.expert_axes.empty()) {
      param["expert"] = p.param->expert;
      param["expert_axes"] = p.expert_axes;
      param["expert_owner"] = p.owner_group_rank;
    }
    j["params"].push_back(std::move(param));
  }

  j["input_layout"] = layout_json(plan.input_layout, mesh);
  j["output_layout"] = layout_json(plan.output_layout, mesh);
  j["comms"] = json::array();
  for (const Collective& c : plan.comms) {
    json cj = {{"after", c.after},   {"before", c.before},
               {"op", to_string(c.op)}, {"axes", c.axes},
               {"groups", c.groups}, {"bytes_prefill", c.bytes_prefill},
               {"bytes_decode", c.bytes_decode}, {"stream", to_string(c.stream)}};
    if (*short_purpose(c.purpose)) cj["purpose"] = short_purpose(c.purpose);
    cj["role"] = to_string(c.purpose);
    cj["split"] = to_string(c.split);
    cj["from_layout"] = layout_json(c.from_layout, mesh);
    cj["to_layout"] = layout_json(c.to_layout, mesh);
    j["comms"].push_back(std::move(cj));
  }

  json weight = json::array(), kv = json::array(), act = json::array(), total = json::array(), fp = json::array(),
       fd = json::array();
  for (const RankCost& rc : plan.ranks) {
    weight.push_back(rc.weight_bytes);
    kv.push_back(rc.kv_cache_bytes);
    act.push_back(rc.activation_bytes);
    total.push_back(rc.memory_bytes());
    fp.push_back(rc.flops_prefill);
    fd.push_back(rc.flops_decode);
  }
  j["memory"] = {{"weight_bytes", weight}, {"kv_cache_bytes", kv}, {"activation_bytes", act}, {"total_bytes", total}};
  j["flops"] = {{"prefill", fp}, {"decode", fd}};
  return j;
}

}  // namespace shardplan
