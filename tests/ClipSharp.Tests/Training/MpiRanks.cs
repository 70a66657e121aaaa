using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;
using ClipSharp.Training;
using ClipSharp.Training.Distributed;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>One data-parallel gradient computation: the same batch as one process and as W ranks with their rows.</summary>
/// <param name="Name">File name of the case's results.</param>
/// <param name="ResNet">The tiny ResNet image tower (synchronised BatchNorm) instead of the micro ViT.</param>
/// <param name="Loss">Objective.</param>
/// <param name="RankMicro">Micro-batch size on each rank (null: the whole share).</param>
/// <param name="SingleMicro">Micro-batch size of the one-process reference.</param>
/// <param name="LocalLoss">open_clip's local_loss.</param>
/// <param name="Overlap">Gradients reduced on the communication thread during the backward pass.</param>
public sealed record GradientCase(string Name, bool ResNet, LossKind Loss, int? RankMicro, int? SingleMicro, bool LocalLoss, bool Overlap = false)
{
    /// <summary>Pairs in the global batch.</summary>
    public const int Batch = 8;

    /// <summary>The cases the <c>gradients</c> program runs and the tests check.</summary>
    public static readonly GradientCase[] All =
    [
        new("infonce", false, LossKind.Infonce, null, null, false),
        new("infonce-micro", false, LossKind.Infonce, 2, 2, false),
        new("infonce-overlap", false, LossKind.Infonce, null, null, false, Overlap: true),
        new("infonce-micro-overlap", false, LossKind.Infonce, 2, 2, false, Overlap: true),
        new("sigmoid", false, LossKind.Sigmoid, null, null, false),
        new("infonce-local", false, LossKind.Infonce, null, null, true),
        new("infonce-local-micro", false, LossKind.Infonce, 2, 2, true),
        new("sigmoid-local", false, LossKind.Sigmoid, null, null, true),
        new("sigmoid-local-overlap", false, LossKind.Sigmoid, null, null, true, Overlap: true),
        new("resnet-syncbn", true, LossKind.Infonce, null, null, false),
        // BatchNorm statistics then cover a micro-batch of every rank: W · 2 pairs, as one process with micro-batches of 4.
        new("resnet-syncbn-micro", true, LossKind.Infonce, 2, 4, false),
    ];

    /// <summary>The tiny ResNet: one bottleneck per stage, width 16, 64 px.</summary>
    public static ClipConfig ResNetConfig => TinyModels.Micro with { VisionLayers = [1, 1, 1, 1], VisionPatchSize = null, VisionWidth = 16, ImageResolution = 64 };

    /// <summary>Trainer settings of the case (micro-batch size of a rank or of the single process).</summary>
    public TrainerOptions Options(bool single) => TinyModels.Options(micro: single ? SingleMicro : RankMicro, loss: Loss) with { LocalLoss = LocalLoss };
}

/// <summary>
/// The program the data-parallel tests start under <c>mpirun</c> (this test assembly's entry point):
/// <c>ClipSharp.Tests.dll collectives OUT_DIR</c> runs every collective and writes what each rank received;
/// <c>ClipSharp.Tests.dll gradients DIR</c> computes each <see cref="GradientCase"/>'s gradients of this rank's rows
/// of the batch in DIR and writes them, summed over ranks, beside it.
/// </summary>
public static class MpiRanks
{
    public static int Main(string[] args)
    {
        try
        {
            using var world = Communicator.Join() ?? throw new InvalidOperationException("not started by an MPI launcher with several processes");
            switch (args)
            {
                case ["collectives", var dir]: Collectives(world, dir); break;
                case ["gradients", var dir]: Gradients(world, dir); break;
                default: throw new ArgumentException($"usage: collectives DIR | gradients DIR (got {string.Join(' ', args)})");
            }
            world.Finish();
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"mpi-ranks: {e}");
            return 1;
        }
    }

    /// <summary>Per-rank input of the collectives check, known to the test as well.</summary>
    public static float ReduceInput(int rank, int i) => i * (rank + 1) + 0.25f;

    /// <summary>Sizes of the gradients the bucketed reducer sums (bucket of 1000 bytes = 250 floats: packed, flushed and chunked).</summary>
    public static readonly int[] ReducerSizes = [10, 300, 7, 100, 1000, 3, 240, 251];

    public const long ReducerBucketBytes = 1000;

    public static float ReducerInput(int rank, int tensor, int i) => (rank + 1) * (i + 0.5f) + tensor;

    public const int StreamBytes = 40_000_003; // more than two broadcast chunks

    public static byte[] StreamPayload()
    {
        var payload = new byte[StreamBytes];
        new Random(3).NextBytes(payload);
        return payload;
    }

    static unsafe void Collectives(Communicator world, string dir)
    {
        int rank = world.Rank, w = world.WorldSize;
        var sum = Enumerable.Range(0, 1000).Select(i => ReduceInput(rank, i)).ToArray();
        world.AllReduceSum(sum);
        var gathered = MemoryMarshal.Cast<byte, long>(world.AllGather(BitConverter.GetBytes(100L + rank))).ToArray();
        var small = world.Broadcast(rank == 0 ? [7, 8, 9] : null);
        byte[] received;
        if (rank == 0)
        {
            using var src = new MemoryStream(StreamPayload());
            world.BroadcastStream(src, null);
            received = src.ToArray();
        }
        else
        {
            using var dst = new MemoryStream();
            world.BroadcastStream(null, dst);
            received = dst.ToArray();
        }
        // Block b of rank r holds (r + 1)·(10·b + i); rank b receives Σ_r of its block.
        var blocks = new float[w * 5];
        for (int b = 0; b < w; b++) for (int i = 0; i < 5; i++) blocks[b * 5 + i] = (rank + 1) * (10 * b + i);
        var mine = new float[5];
        fixed (float* all = blocks) fixed (float* m = mine) world.ReduceScatter(all, m, 5);
        long max = world.AllReduceMax(10L * rank);

        var reducer = new GradientReducer(world, ReducerBucketBytes);
        var parameters = ReducerSizes.Select((n, t) =>
        {
            var p = zeros(n).requires_grad_(true);
            p.grad = tensor(Enumerable.Range(0, n).Select(i => ReducerInput(rank, t, i)).ToArray());
            return p;
        }).ToList();
        reducer.SumGradients(parameters);
        world.Barrier();

        var result = new Dictionary<string, object>
        {
            ["rank"] = rank, ["world"] = w, ["sum"] = sum, ["gathered"] = gathered, ["small"] = small.Select(b => (int)b).ToArray(),
            ["stream_length"] = received.Length, ["stream_sha256"] = Convert.ToHexString(SHA256.HashData(received)),
            ["reduce_scatter"] = mine, ["max"] = max, ["buckets"] = reducer.Buckets,
            ["reduced"] = parameters.Select(p => p.grad!.data<float>().ToArray()).ToArray(),
        };
        File.WriteAllText(Path.Combine(dir, $"collectives.rank{rank}.json"), JsonSerializer.Serialize(result));
    }

    /// <summary>Path of a gradient case's result for one rank.</summary>
    public static string GradientFile(string dir, string name, int rank) => Path.Combine(dir, $"{name}.rank{rank}.safetensors");

    static void Gradients(Communicator world, string dir)
    {
        using var batch = SafeTensors.Load(Path.Combine(dir, "batch.safetensors"));
        int w = world.WorldSize, rank = world.Rank;
        using var rows = tensor(Enumerable.Range(0, GradientCase.Batch / w).Select(i => (long)(rank + w * i)).ToArray());
        foreach (var c in GradientCase.All)
        {
            using var scope = NewDisposeScope();
            using var model = ClipModel.Load(Path.Combine(dir, c.ResNet ? "init-resnet.safetensors" : "init-vit.safetensors"));
            if (c.ResNet) SyncBatchNorm.Enable((ModifiedResNet)model.Visual, world);
            using var reducer = new GradientReducer(world, 4096, c.Overlap);
            if (c.Overlap) reducer.WatchBlocks(model);
            using var trainer = new ClipTrainer(model, c.Options(single: false)) { DataParallelGroup = reducer };
            model.train();
            var pixels = batch[c.ResNet ? "pixels64" : "pixels32"].index_select(0, rows);
            var ids = batch["ids"].index_select(0, rows);
            trainer.Optimizer.ZeroGrad();
            double loss = trainer.LossAndBackward(pixels, ids);
            trainer.DataParallelGroup!.SumGradients(trainer.Optimizer.Parameters);
            using var result = GradientCaseResult(trainer, loss);
            result.Add("early_gradients", tensor(new[] { reducer.EarlyGradients }));
            SafeTensors.Save(GradientFile(dir, c.Name, rank), result);
        }
    }

    /// <summary>What a case is compared on: "loss", every present gradient as "grad.NAME", and the BatchNorm running statistics.</summary>
    public static StateDict GradientCaseResult(ClipTrainer trainer, double loss)
    {
        var sd = new StateDict();
        sd.Add("loss", tensor(new[] { loss }));
        foreach (var (name, p) in trainer.NamedParameters())
            if (p.grad is { } g) sd.Add("grad." + name, g.detach().clone());
        foreach (var (name, t) in trainer.Model.state_dict())
            if (name.EndsWith("running_mean", StringComparison.Ordinal) || name.EndsWith("running_var", StringComparison.Ordinal)) sd.Add("state." + name, t.detach().clone());
        return sd;
    }
}
