using ClipSharp.Training;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>
/// TorchSharp frees implicitly created scalars from the finalizer thread, and a collection during the native call
/// that uses one crashes libtorch. Training and inference paths pass rooted scalars; this test forces collections
/// continuously while training steps and forward passes run. Before the fix it aborted the process within seconds.
/// </summary>
public class GarbageCollectionStressTests
{
    [Fact]
    public void TrainingAndInferenceSurviveConstantCollections()
    {
        using var model = TinyModels.Create(seed: 3);
        using var trainer = new ClipTrainer(model, TinyModels.Options(steps: 10_000));
        var (pixels, ids) = TinyModels.RandomBatch(8, seed: 4);
        using var stop = new CancellationTokenSource();
        var hammer = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        });
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int steps = 0;
            while (clock.Elapsed < TimeSpan.FromSeconds(8))
            {
                trainer.Step(pixels, ids);
                using (no_grad())
                using (NewDisposeScope())
                    model.forward(pixels, ids);
                steps++;
            }
            Assert.True(steps > 5, $"only {steps} steps ran");
        }
        finally
        {
            stop.Cancel();
            hammer.Wait();
        }
    }
}
