# Defaults that more than one module needs, written once.
{
  # The model a vLLM host serves when the inventory names none (services.vllm.model). vLLM
  # serves it under this name (--served-model-name) and LiteLLM routes to the same name.
  vllmModel = "Qwen/Qwen2.5-7B-Instruct";
  # CUDA compute capabilities to build for when the inventory's GPU names none: null, nixpkgs'
  # own default list, which is what a public CUDA binary cache builds (any other list changes
  # every CUDA package's hash: no cache hit, torch and vLLM build from source for hours). Naming
  # only the GPU's capability (["8.6"] for an RTX 3090) shortens a from-source build and the
  # closure; it pays only with a cache of one's own (issue #27 M8; README, "vLLM").
  cudaCapabilities = null;
}
