using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;
using ClipSharp.Modeling;
using ClipSharp.Tests.Evaluation;
using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Text;
using ClipSharp.Training;
using ClipSharp.Training.Data;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>
/// TorchSharp frees implicitly created scalars from the finalizer thread, and a collection during the native call
/// that uses one crashes libtorch. Training, inference and evaluation paths pass rooted scalars; these tests force
/// collections continuously while training steps, forward passes and evaluations run. Before the fixes the training
/// test aborted the process within seconds, and the evaluation test failed in the logistic-regression solver.
/// A freed scalar only does harm when a collection lands inside the native call that reads it, so a single implicit
/// scalar on tensors this small can go unnoticed here; <see cref="ScalarLifetimeAuditTests"/> finds every one in the
/// compiled code.
/// The collecting thread would expose every other test running beside it to the same hazard (TorchSharp's own modules,
/// which the audit cannot follow, included), so these tests run on their own, in the collection xunit runs alone.
/// </summary>
[Collection("global generator")]
public class GarbageCollectionStressTests
{
    /// <summary>
    /// Runs <paramref name="round"/> repeatedly for <paramref name="duration"/> (and at least <paramref name="minRounds"/> times)
    /// while another thread collects non-stop: full collections, or only up to <paramref name="generation"/> when it is ≥ 0.
    /// </summary>
    static void RunWhileCollecting(TimeSpan duration, Action round, int minRounds = 1, int generation = -1)
    {
        using var stop = new CancellationTokenSource();
        var hammer = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                if (generation < 0) GC.Collect(); else GC.Collect(generation);
                GC.WaitForPendingFinalizers();
            }
        });
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int rounds = 0;
            while (clock.Elapsed < duration || rounds < minRounds)
            {
                round();
                rounds++;
            }
        }
        finally
        {
            stop.Cancel();
            hammer.Wait();
        }
    }

    [Fact]
    public void TrainingAndInferenceSurviveConstantCollections()
    {
        using var model = TinyModels.Create(seed: 3);
        using var trainer = new ClipTrainer(model, TinyModels.Options(steps: 10_000));
        var (pixels, ids) = TinyModels.RandomBatch(8, seed: 4);
        // At least six steps even when the machine is busy (a throughput assertion here failed under load).
        RunWhileCollecting(TimeSpan.FromSeconds(8), () =>
        {
            trainer.Step(pixels, ids);
            using (no_grad())
            using (NewDisposeScope())
                model.forward(pixels, ids);
        }, minRounds: 6);
    }

    /// <summary>
    /// A few-shot evaluation per round: image features extracted, a zero-shot classifier built (prompt encoding) and
    /// scored, then a C sweep and a final fit of the L-BFGS logistic regression on its tensor objective (ManagedWorkLimit = 0
    /// forces it even for this tiny problem), scored through the fitted model's logits. Each round must reproduce a round
    /// run without the collector, so a freed scalar that is read as garbage instead of crashing fails as well.
    /// Generation-0 collections are enough to finalize a just-created scalar and are far cheaper than full ones, so many
    /// more of them land inside native calls: with the solver's implicit scalars this failed in every one of five runs.
    /// </summary>
    [Fact]
    public void EvaluationAndTensorLogisticRegressionSurviveConstantCollections()
    {
        using var tmp = new TestData.TempDir();
        var data = new ImageFolderDataset(TestData.ImageFolder(tmp["f"], perClass: 3));
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        var evaluator = new Evaluator(model, SharedTokenizer.Instance, new EvaluatorOptions
        {
            Extraction = new() { BatchSize = 16, DecodeThreads = 1 },
            Probe = new() { ManagedWorkLimit = 0, MaxIterations = 20 },
        });
        string Round()
        {
            var r = evaluator.FewShot(data, data, ks: [2], seeds: [0], templates: ["a photo of a {}.", "a {} thing."]);
            return $"zero-shot {r.ZeroShotTop1:R}; " + string.Join("; ", r.Points.Select(p =>
                $"{p.K}-shot {string.Join(" ", p.Accuracies.Select(a => a.ToString("R")))} at C {string.Join(" ", p.ChosenC.Select(c => c.ToString("R")))}"));
        }

        string expected = Round();
        RunWhileCollecting(TimeSpan.FromSeconds(6), () => Assert.Equal(expected, Round()), minRounds: 2, generation: 0);
    }

    /// <summary>
    /// The trainer's other configurations, every round compared with a round run without the collector: the sigmoid
    /// loss over micro-batches (cached features, then one backward per micro-batch) in bf16 mixed precision (master
    /// gradients accumulated from the compute copy), and InfoNCE in fp32. A clip threshold this low scales the gradients
    /// on every step, and weight decay is on, so each step runs every scalar of the loss, clip, AdamW and logit-scale clamp.
    /// </summary>
    [Fact]
    public void TrainerConfigurationsReproduceAnUnstressedRunUnderConstantCollections()
    {
        Dictionary<string, Tensor> init;
        using (var m = TinyModels.Create(seed: 21)) init = m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var (pixels, ids) = TinyModels.RandomBatch(8, seed: 22);
        TrainerOptions[] configurations =
        [
            TinyModels.Options(steps: 10, micro: 4, loss: LossKind.Sigmoid) with { Precision = TrainPrecision.Bf16, GradClip = 1e-3 },
            TinyModels.Options(steps: 10) with { GradClip = 1e-3 },
        ];
        string Round()
        {
            var text = new StringBuilder();
            foreach (var options in configurations)
            {
                using var model = new ClipModel(TinyModels.Micro, initialize: false);
                model.LoadWeights(init);
                using var trainer = new ClipTrainer(model, options);
                for (int step = 0; step < 2; step++)
                {
                    var r = trainer.Step(pixels, ids);
                    text.Append($"loss {r.Loss:R} norm {r.GradNorm:R} scale {r.LogitScale:R}; ");
                }
                foreach (var (name, p) in trainer.NamedParameters())
                    text.Append(name).Append(' ').Append(Digest(p)).Append("; ");
            }
            return text.ToString();
        }

        string expected = Round();
        RunWhileCollecting(TimeSpan.FromSeconds(5), () => Assert.Equal(expected, Round()), minRounds: 2, generation: 0);
        foreach (var t in init.Values) t.Dispose();
        pixels.Dispose();
        ids.Dispose();
    }

    /// <summary>
    /// A short training run end to end, compared with the same run without the collector: the data loader decoding and
    /// augmenting (random resized crop, flip, colour jitter, greyscale) on worker threads, training steps, validation
    /// (retrieval R@1, contrastive loss, zero-shot top-1 on a class folder), metrics, checkpoints and the final export.
    /// The runs start from saved weights, so the global generator, which parallel tests share, is not read.
    /// </summary>
    [Fact]
    public void TrainingRunWithAugmentationAndValidationReproducesAnUnstressedRun()
    {
        using var tmp = new TestData.TempDir();
        string init = tmp["init.safetensors"];
        using (var m = TinyModels.Create(seed: 23)) m.Save(init);
        string folder = TestData.ImageFolder(tmp["zero-shot"], perClass: 2);
        int runs = 0;
        string Round()
        {
            string dir = tmp[$"run{runs++}"];
            var cfg = RunTests.Config(dir, init, steps: 6) with
            {
                Data = new DataSection
                {
                    BatchSize = 8, Workers = 2, Prefetch = 2,
                    Augment = new AugmentSection { ScaleMin = 0.5, Hflip = true, ColorJitter = 0.3, Grayscale = 0.3 },
                    ZeroShot = new ZeroShotSection { Path = folder, Templates = ["a photo of a {}.", "a {} thing."] },
                },
                Output = new OutputSection { Dir = dir, CheckpointEvery = 3, KeepLast = 1, EvalEvery = 3, LogEvery = 1, Tensorboard = false },
            };
            using var run = new TrainingRun(cfg, tmp.Path, OverfitTests.Tokenizer, [RunTests.Shapes(bad: 1)], RunTests.Shapes());
            var result = run.Run();
            return string.Join("; ", result.LastValidation.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value:R}"))
                + "; final " + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(result.FinalWeights!)));
        }

        string expected = Round();
        RunWhileCollecting(TimeSpan.Zero, () => Assert.Equal(expected, Round()), minRounds: 1, generation: 0);
    }

    /// <summary>SHA-256 of a float32 tensor's values.</summary>
    static string Digest(Tensor t)
    {
        using var scope = NewDisposeScope();
        var values = t.detach().contiguous().data<float>().ToArray();
        return Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(values.AsSpan())));
    }
}
