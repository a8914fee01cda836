/** dpad-ts: the public API. */
export { initBackend, backendInfo, type BackendInfo, type BackendChoice } from './backend.ts';

// weight and image I/O
export { openCheckpoint } from './io/checkpoint.ts';
export { SafetensorsFile, ShardedSafetensors, writeSafetensors } from './io/safetensors.ts';
export { TorchCheckpoint } from './io/torch.ts';
export { FormatError, WeightError } from './io/errors.ts';
export { loadImage, savePng, imageFromHwc } from './io/image.ts';
export { resize, crop, type ImageU8 } from './io/resample.ts';
export type { TensorSource, TensorMeta } from './io/source.ts';

// module base
export { Module, LoadError, type LoadOptions, type WeightMap } from './nn/module.ts';

// CLIP scorer
export { ClipModel } from './models/clip/model.ts';
export { ClipTokenizer } from './models/clip/tokenizer.ts';
export { ClipScorer, type ScoreResult } from './models/clip/scorer.ts';
export { clipPreprocess } from './models/clip/preprocess.ts';
export { VIT_B_32, clipConfigFrom, type ClipConfig } from './models/clip/config.ts';
export { loadClip } from './models/clip/weights.ts';
export { convertClip } from './models/clip/convert.ts';

// Qwen2.5-VL policy
export { Qwen2_5_VL } from './models/qwen2_5_vl/model.ts';
export { QWEN2_5_VL_3B, QWEN2_5_VL_7B, qwenConfigFrom, type QwenConfig } from './models/qwen2_5_vl/config.ts';
export { generate, sequenceLogProbs, type GenerateOptions, type GenerateResult } from './models/qwen2_5_vl/generate.ts';
export { preprocessImage, smartResize, chatPrompt } from './models/qwen2_5_vl/processor.ts';
export { PolicyTokenizer } from './models/qwen2_5_vl/tokenizer.ts';
export { loadQwen } from './models/qwen2_5_vl/weights.ts';
export { convertQwen } from './models/qwen2_5_vl/convert.ts';

// SAM2 segmenter
export { Sam2Image } from './models/sam2/model.ts';
export { Sam2Predictor, type Prediction } from './models/sam2/predictor.ts';
export { SAM2_CONFIGS, sam2ConfigFrom, type Sam2Config } from './models/sam2/config.ts';
export { loadSam2 } from './models/sam2/weights.ts';
export { convertSam2 } from './models/sam2/convert.ts';

// rewards, RL, metrics
export * from './rewards/index.ts';
export * from './rl/index.ts';
export * from './eval/metrics.ts';

// the pipeline, training and evaluation
export { Segmenter, type SegmentResult } from './pipeline/segment.ts';
export { loadPolicy, makePolicy, encodePrompt, type Policy } from './pipeline/policy.ts';
export { loadPolicyFrom, loadSegmenterModelFrom, loadScorerFrom, DEFAULT_WEIGHTS } from './pipeline/bundle.ts';
export { userPrompt, normalizeQuery, DPAD_PROMPT, BASELINE_PROMPT } from './pipeline/prompt.ts';
export { GrpoTrainer, type TrainDataset, type TrainSample, type StepLog } from './rl/trainer.ts';
export { trainConfig, readTrainConfig, DEFAULT_TRAIN_CONFIG, type TrainConfig } from './rl/config.ts';
export { evaluate, type EvalSample, type EvalRecord } from './eval/evaluate.ts';
export { worldSample, referenceResponse, type WorldSample } from './data/world/generator.ts';
export { parquetEvalSamples, parquetTrainSamples } from './data/parquet.ts';
export { reasonSegSamples } from './data/reasonseg.ts';
