using ClipSharp.Checkpoints;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Training;
using ClipSharp.Training.Data;

namespace ClipSharp.Tests.Training;

/// <summary>
/// Fine-tuning a checkpoint that declares its own image mean/std (OpenCLIP and Hugging Face models may) trains and
/// validates on pixels normalised with those constants, the ones its inference uses, and the run keeps them.
/// </summary>
public class DeclaredNormalisationTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-norm-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    static readonly ((float R, float G, float B) Mean, (float R, float G, float B) Std) Declared =
        ((0.5f, 0.4f, 0.3f), (0.2f, 0.25f, 0.3f));

    [Fact]
    public void AugmentationNormalisesWithTheGivenConstants()
    {
        var png = SyntheticShapes.Png(3);
        var image = ImageDecoder.Decode(png, "shape3");
        var clip = new float[3 * 32 * 32];
        var mine = new float[3 * 32 * 32];
        var options = new AugmentSection();
        new Augmentation(32, options, ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd).Apply(image, new Random(7), clip);
        new Augmentation(32, options, Declared.Mean, Declared.Std).Apply(image, new Random(7), mine);
        float[] cm = [ClipImagePreprocessorOptions.ClipMean.R, ClipImagePreprocessorOptions.ClipMean.G, ClipImagePreprocessorOptions.ClipMean.B];
        float[] cs = [ClipImagePreprocessorOptions.ClipStd.R, ClipImagePreprocessorOptions.ClipStd.G, ClipImagePreprocessorOptions.ClipStd.B];
        float[] dm = [Declared.Mean.R, Declared.Mean.G, Declared.Mean.B];
        float[] ds = [Declared.Std.R, Declared.Std.G, Declared.Std.B];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 32 * 32; i++)
            {
                // The same crop and pixel value x/255, normalised two ways.
                float x = clip[c * 1024 + i] * cs[c] + cm[c];
                Assert.Equal((x - dm[c]) / ds[c], mine[c * 1024 + i], 4);
            }
    }

    [Fact]
    public void FineTuningKeepsTheCheckpointsDeclaredMeanAndStdThroughResume()
    {
        string init = Path.Combine(root, "declared.safetensors");
        using (var m = TinyModels.Create(5))
        {
            m.Normalisation = Declared;
            m.Save(init);
        }
        string dir = Path.Combine(root, "run");
        var logs = new List<string>();
        var first = new TrainingRun(RunTests.Config(dir, init, steps: 10), root, OverfitTests.Tokenizer, [RunTests.Shapes()], RunTests.Shapes());
        first.OnLog = logs.Add;
        first.Run(stopAfterStep: 5);
        Assert.Contains(logs, l => l.StartsWith("normalising images with the model's mean (0.5, 0.4, 0.3) and std (0.2, 0.25, 0.3)", StringComparison.Ordinal));

        // The step checkpoint records the constants, so the resumed run (built from model_config) uses them too.
        var store = new CheckpointStore(dir);
        using (var ckpt = CheckpointStore.Load(store.Latest()!))
            Assert.Equal(Declared, PreprocessingConfig.Find(ckpt.Path, ckpt.Metadata));
        logs.Clear();
        var resumed = new TrainingRun(RunTests.Config(dir, init, steps: 10), root, OverfitTests.Tokenizer, [RunTests.Shapes()], RunTests.Shapes());
        resumed.OnLog = logs.Add;
        var result = resumed.Run(resume: "latest");
        Assert.Contains(logs, l => l.StartsWith("normalising images with the model's mean (0.5, 0.4, 0.3)", StringComparison.Ordinal));
        using var final = ClipModel.Load(result.FinalWeights!);
        Assert.Equal(Declared, final.Normalisation);
    }

    [Fact]
    public void AFreshModelKeepsClipsConstantsAndSaysNothing()
    {
        string dir = Path.Combine(root, "fresh");
        string init = Path.Combine(root, "plain.safetensors");
        using (var m = TinyModels.Create(5)) m.Save(init);
        var logs = new List<string>();
        var run = new TrainingRun(RunTests.Config(dir, init, steps: 2), root, OverfitTests.Tokenizer, [RunTests.Shapes()], RunTests.Shapes());
        run.OnLog = logs.Add;
        var result = run.Run();
        Assert.DoesNotContain(logs, l => l.StartsWith("normalising", StringComparison.Ordinal));
        using var final = ClipModel.Load(result.FinalWeights!);
        Assert.Equal((ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd), final.Normalisation);
    }
}
