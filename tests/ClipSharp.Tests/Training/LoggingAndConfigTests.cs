using System.Buffers.Binary;
using System.Text;
using ClipSharp.Training;

namespace ClipSharp.Tests.Training;

/// <summary>TensorBoard record framing, config parsing, overrides and YAML.</summary>
public class LoggingAndConfigTests
{
    [Fact]
    public void Crc32cMatchesTheStandardCheckValue()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(0u, Crc32C.Compute([]));
    }

    [Fact]
    public void TensorboardRecordsAreFramedWithMaskedCrcs()
    {
        var dir = Directory.CreateTempSubdirectory("clipsharp-tb-").FullName;
        string path;
        using (var w = new TensorBoardWriter(dir)) { w.Scalar("train/loss", 7, 1.5f); path = w.Path; }
        var bytes = File.ReadAllBytes(path);
        int at = 0, records = 0;
        while (at < bytes.Length)
        {
            ulong len = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            Assert.Equal(Crc32C.Masked(bytes.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)));
            var payload = bytes.AsSpan(at + 12, (int)len);
            Assert.Equal(Crc32C.Masked(payload), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)len)));
            at += 16 + (int)len;
            records++;
        }
        Assert.Equal(2, records);
        var text = Encoding.ASCII.GetString(bytes);
        Assert.Contains("brain.Event:2", text);
        Assert.Contains("train/loss", text);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void ConfigParsesWithDefaultsOverridesAndRejectsTypos()
    {
        const string json = """
            { "model": { "name": "cpu-vit-tiny" },
              "data": { "train": [ { "type": "csv", "path": "train.csv", "caption_column": "title" } ], "batch_size": 64 },
              // comments are fine
              "schedule": { "steps": 100 } }
            """;
        var cfg = TrainConfig.FromJson(json, ["optimizer.lr=1e-4", "data.train.0.weight=2", "output.dir=runs/x", "loss.type=sigmoid"]);
        Assert.Equal(1e-4, cfg.Optimizer.Lr);
        Assert.Equal(2.0, cfg.Data.Train[0].Weight);
        Assert.Equal("runs/x", cfg.Output.Dir);
        Assert.Equal(LossKind.Sigmoid, cfg.Loss.Type);
        Assert.Equal(0.9, cfg.Data.Augment.ScaleMin);
        var arch = cfg.Model.Resolve()!;
        Assert.Equal(8, arch.VisionPatchSize);
        Assert.Equal(64, arch.ImageResolution);
        Assert.Equal(4, arch.EffectiveVisionHeads);
        Assert.Equal(cfg.ToJson(), TrainConfig.FromJson(cfg.ToJson()).ToJson());
        Assert.Throws<ClipSharpException>(() => TrainConfig.FromJson("""{ "model": { "name": "x" }, "optimiser": {} }"""));
        Assert.Throws<ClipSharpException>(() => TrainConfig.FromJson(json, ["data.micro_batch_size=7"]));
        Assert.Equal(0.98, TrainerOptions.From(cfg, arch).AdamW.Beta2);
        Assert.Equal(0.999, TrainerOptions.From(cfg, ModelPresets.Get("RN50")).AdamW.Beta2);
    }

    [Fact]
    public void YamlConfigReadsLikeJson()
    {
        var node = YamlConfig.ToJson("""
            model:
              name: cpu-vit-micro
            data:
              batch_size: 32
              train:
                - type: tsv
                  path: "pairs.tsv"
            optimizer:
              lr: 0.001
            freeze:
              lock_image: true
            """);
        var cfg = TrainConfig.FromNode(node, null, "yaml");
        Assert.Equal(32, cfg.Data.BatchSize);
        Assert.Equal(SourceKind.Tsv, cfg.Data.Train[0].Type);
        Assert.Equal(1e-3, cfg.Optimizer.Lr);
        Assert.True(cfg.Freeze.LockImage);
    }
}
