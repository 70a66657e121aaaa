using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;
using ClipSharp.Tests.Evaluation;
using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Text;
using ClipSharp.Training;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>
/// TorchSharp frees implicitly created scalars from the finalizer thread, and a collection during the native call
/// that uses one crashes libtorch. Training, inference and evaluation paths pass rooted scalars; these tests force
/// collections continuously while training steps, forward passes and evaluations run. Before the fixes the training
/// test aborted the process within seconds, and the evaluation test failed in the logistic-regression solver.
/// </summary>
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
}
