using ClipSharp.Training;
using ClipSharp.Training.Data;

namespace ClipSharp.Tests.Training;

/// <summary>Deterministic mixing and shuffling, augmentation ranges, and bad samples skipped rather than fatal.</summary>
public class DataPipelineTests
{
    static LoaderOptions Options(int seed = 3) => new() { BatchSize = 8, ImageSize = 32, Workers = 2, Prefetch = 2, Seed = seed, VocabSize = 1000 };

    [Fact]
    public void CorruptSamplesAreSkippedCountedAndReplaced()
    {
        var source = RunTests.Shapes(bad: 4);
        using var loader = new TrainingDataLoader([source], OverfitTests.Tokenizer, Options());
        int skipped = 0;
        for (int i = 0; i < 6; i++)
        {
            var b = loader.Next();
            Assert.Equal(8, b.Count);
            Assert.Equal(8 * 3 * 32 * 32, b.Pixels.Length);
            skipped += b.Skipped;
            Assert.All(b.SkipReasons, r => Assert.StartsWith("bad", r));
        }
        Assert.True(skipped >= 4, $"skipped {skipped}");
        Assert.True(loader.SkippedTotal >= skipped); // the producer may already be ahead
    }

    [Fact]
    public void SameSeedSameBatchesAndResumeFromPosition()
    {
        var source = RunTests.Shapes(bad: 1);
        var batches = new List<PreparedBatch>();
        using (var a = new TrainingDataLoader([source], OverfitTests.Tokenizer, Options()))
            for (int i = 0; i < 4; i++) batches.Add(a.Next());
        using (var b = new TrainingDataLoader([source], OverfitTests.Tokenizer, Options()))
            for (int i = 0; i < 4; i++) Assert.Equal(batches[i].Pixels, b.Next().Pixels);
        using (var c = new TrainingDataLoader([source], OverfitTests.Tokenizer, Options(), batches[1].EndPosition))
        {
            var next = c.Next();
            Assert.Equal(batches[2].Pixels, next.Pixels);
            Assert.Equal(batches[2].Ids, next.Ids);
        }
        using var d = new TrainingDataLoader([source], OverfitTests.Tokenizer, Options(seed: 4));
        Assert.NotEqual(batches[0].Pixels, d.Next().Pixels);
    }

    [Fact]
    public void MixPlanFollowsWeightsAndVisitsEverySampleOncePerPass()
    {
        var a = new PairSource("a", RunTests.Shapes().Samples.Take(10).ToList(), 3);
        var b = new PairSource("b", RunTests.Shapes().Samples.Take(5).ToList(), 1);
        var plan = new MixPlan([a, b], 5);
        var draws = Enumerable.Range(0, 4000).Select(_ => plan.Next()).ToList();
        double fracA = draws.Count(d => d.Source == 0) / 4000.0;
        Assert.InRange(fracA, 0.72, 0.78);
        var firstTenOfA = draws.Where(d => d.Source == 0).Take(10).Select(d => d.Index).Order().ToList();
        Assert.Equal(Enumerable.Range(0, 10), firstTenOfA);
        var replay = new MixPlan([a, b], 5);
        replay.SkipTo(1234);
        Assert.Equal(draws[1234], replay.Next());
    }

    [Fact]
    public void RandomResizedCropStaysInsideTheImageAndTheScaleRange()
    {
        var aug = new Augmentation(32, new AugmentSection(), ClipSharp.Imaging.ClipImagePreprocessorOptions.ClipMean, ClipSharp.Imaging.ClipImagePreprocessorOptions.ClipStd);
        var rng = new Random(1);
        for (int i = 0; i < 500; i++)
        {
            var (x, y, w, h) = aug.CropBox(200, 180, rng);
            Assert.True(x >= 0 && y >= 0 && x + w <= 200 && y + h <= 180);
            double area = (double)w * h / (200 * 180);
            Assert.InRange(area, 0.85, 1.0);
        }
    }
}
