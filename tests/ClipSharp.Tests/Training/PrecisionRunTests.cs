using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Training;

namespace ClipSharp.Tests.Training;

/// <summary>bf16 and gradient checkpointing through whole runs: config keys, resume, fp32 exports.</summary>
public class PrecisionRunTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-prec-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    [Fact]
    public void ConfigKeysSelectBf16AndCheckpointing()
    {
        var cfg = TrainConfig.FromJson("""{ "model": { "name": "cpu-vit-micro", "precision": "bf16", "grad_checkpointing": true } }""");
        Assert.Equal(TrainPrecision.Bf16, cfg.Model.Precision);
        Assert.True(cfg.Model.GradCheckpointing);
        Assert.Equal(TrainPrecision.Bf16, TrainerOptions.From(cfg, cfg.Model.Resolve()!).Precision);
        Assert.Contains("\"precision\": \"bf16\"", cfg.ToJson());
        Assert.Throws<ClipSharpException>(() => TrainConfig.FromJson("""{ "model": { "name": "cpu-vit-micro", "precision": "fp8" } }"""));
    }

    [Fact]
    public void Bf16CheckpointedRunResumesExactlyAndExportsFloat32()
    {
        string init = Path.Combine(root, "init.safetensors");
        using (var m = TinyModels.Create(5)) m.Save(init);
        TrainConfig Cfg(string dir) => RunTests.Config(Path.Combine(root, dir), init, steps: 12) with
        {
            Model = new ModelSection { Config = (JsonObject)JsonNode.Parse(TinyModels.Micro.ToJson())!, InitFrom = init, Precision = TrainPrecision.Bf16, GradCheckpointing = true },
        };
        TrainingRun New(string dir) => new(Cfg(dir), root, OverfitTests.Tokenizer, [RunTests.Shapes()], RunTests.Shapes());

        var straight = New("a").Run();
        New("b").Run(stopAfterStep: 6);
        var resumed = New("b").Run(resume: "latest");
        Assert.Equal(12, resumed.Steps);
        using var a = SafeTensors.Load(straight.FinalWeights!);
        using var b = SafeTensors.Load(resumed.FinalWeights!);
        foreach (var k in a.Keys)
        {
            Assert.Equal(TorchSharp.torch.ScalarType.Float32, a[k].dtype);
            TensorAssert.Absolute(b[k], a[k], 1e-6, k);
        }
    }
}
