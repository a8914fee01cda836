/** dpad-ts: the public API. */
export { initBackend, backendInfo, registerBackendProvider, onBackend, backendForPhase, wasmFasterFor, type BackendInfo, type BackendChoice, type BackendProvider, type Workload } from './backend.ts';

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

// Python-compatible helpers and the text protocol (prompt template, answer parsing)
export { PyError, pyJsonLoads, pyStrip, pyRound, type PyValue } from './util/pycompat.ts';
export * from './prompt/index.ts';

// rewards (the registry), optimizer, RL, metrics
export * from './rewards/index.ts';
export { AdamW, clipGradNorm, DEFAULT_ADAMW, type AdamWConfig, type AdamWState } from './optim/adamw.ts';
export { applyGradients, namedGradients, optimizerStep, type StepOptions, type StepResult } from './optim/step.ts';
export { warmup, warmupCosine } from './optim/schedule.ts';
export * from './rl/index.ts';
export * from './eval/metrics.ts';

// data: one opener for every --data kind, the loaders, the sample types
export { openDataset, DATASET_LOADERS, worldLoader, parquetLoader, referLoader, reasonSegLoader, type DatasetLoader, type DatasetOptions, type OpenedDataset } from './data/open.ts';
export type { EvalSample, EvalSet, Skipped, TrainDataset, TrainSample } from './data/types.ts';
export { worldSample, referenceResponse, type Split, type WorldSample } from './data/world/generator.ts';
export { worldTrainDataset } from './data/world/dataset.ts';
export { parquetEvalSamples, parquetTrainSamples, parquetRowCount } from './data/parquet.ts';
export { reasonSegSamples, countReasonSeg } from './data/reasonseg.ts';
export { refCocoIndex, refCocoSamples } from './data/refcoco.ts';

// the pipeline: policy, segmenter, frames, weights bundles, overlays
export { Segmenter, bestMaskIndex, DEFAULT_MAX_NEW_TOKENS, type SegmentResult, type SegmentOptions, type SegmentBatchOptions } from './pipeline/segment.ts';
export { loadPolicy, makePolicy, encodePrompt, encodeImage, type Policy, type EncodedPrompt } from './pipeline/policy.ts';
export { toView, boxToView, answerInImage, frameOf, type ViewFrame } from './pipeline/frame.ts';
export { loadPolicyFrom, loadSegmenterModelFrom, loadScorerFrom, loadWeights, weightsFingerprint, DEFAULT_WEIGHTS, type WeightsBundle, type WeightsFingerprint } from './pipeline/bundle.ts';
export { maskPng, overlayPng, overlaySheetPng, saveBuffer, type OverlayOptions, type OverlayPanel } from './pipeline/overlay.ts';

// training and evaluation
export { GrpoTrainer, type StepLog, type StepPrompt, type Rollout } from './rl/trainer.ts';
export { referenceCopy } from './rl/reference.ts';
export { trainConfig, readTrainConfig, DEFAULT_TRAIN_CONFIG, type TrainConfig } from './rl/config.ts';
export { evaluate, readResults, type EvalRecord, type EvaluateOptions } from './eval/evaluate.ts';
export { tokenBands, tokenScatter } from './eval/figures.ts';
export { evaluateOnWorld, type WorldPolicyReport } from './eval/world_policy.ts';
export { readResultsFile, provenanceMismatch, type EvalProvenance } from './eval/evaluate.ts';
export * from './eval/bootstrap.ts';
export * from './eval/ablation_table.ts';

// CLI helpers and atomic writes (the examples' building blocks)
export { runCli, parseCli, UsageError } from './util/cli.ts';
export { didYouMean } from './util/cli.ts';
export { writeJsonAtomic, writeFileAtomic } from './io/atomic.ts';
