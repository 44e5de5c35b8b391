// SPDX-License-Identifier: GPL-2.0
/*
 * kcycle_leaks: the controls for kcycle's leak ledger.
 *
 * Init walks a table of {init, exit} steps, one per kernel namespace a
 * driver registers in (slab, debugfs, sysfs class/device/kobject, platform
 * driver and device, procfs, sysctl, chrdev, misc, kthread, workqueue,
 * timer, delayed work, kmalloc). Exit undoes exactly what init did, in
 * reverse, as i915's table does since the seed patch. Each fault parameter
 * breaks that symmetry in one place, so kcycle has a deliberate bug to
 * flag for every detector:
 *
 *   leak=<step>[,<step>...]  exit skips these steps' teardown ("all" = every one)
 *   fail_at=<step>           init fails with -ENODEV right after this step
 *   unwind_leak=<step>       the error path (only) forgets this step's teardown
 *   leak_objects=N           N kmalloc(512) objects are never freed (kmemleak, trends)
 *
 * With no parameters the module is clean: every load/unload cycle leaves
 * nothing behind.
 */
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/kobject.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysctl.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

#define NAME "kcycle_leaks"

static char *leak = "";
module_param(leak, charp, 0444);
MODULE_PARM_DESC(leak, "comma-separated steps whose teardown exit skips (\"all\": every step)");
static char *fail_at = "";
module_param(fail_at, charp, 0444);
MODULE_PARM_DESC(fail_at, "fail init with -ENODEV right after this step");
static char *unwind_leak = "";
module_param(unwind_leak, charp, 0444);
MODULE_PARM_DESC(unwind_leak, "the init error path forgets this step's teardown");
static int leak_objects;
module_param(leak_objects, int, 0444);
MODULE_PARM_DESC(leak_objects, "kmalloc objects leaked by every load");

static struct kmem_cache *cache;
static void *cache_obj;
static struct dentry *debugfs_dir;
static u32 ticks;
static struct class *class;
static struct device *class_dev;
static struct kobject *kobj;
static struct proc_dir_entry *proc_dir;
static struct ctl_table_header *sysctl_hdr;
static dev_t chrdev;
static struct task_struct *thread;
static struct workqueue_struct *wq;
static struct timer_list timer;
static struct delayed_work dwork;
static void *buffer;
static struct platform_device *pdev;
static bool timer_live, dwork_live;

static int proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "ticks %u\n", READ_ONCE(ticks));
	return 0;
}

static const struct file_operations misc_fops = {
	.owner = THIS_MODULE,
};

/*
 * The misc device and the sysctl table live in kmalloc'd memory, not in the
 * module image, so a leaked registration can still be listed after unload
 * (/proc/misc and /proc/sys print names): the ledger sees the leftover, and
 * the next load trips over it, instead of the listing oopsing at once.
 */
static struct miscdevice *misc;
static struct ctl_table *sysctl_table;

static int probe(struct platform_device *dev)
{
	dev_info(&dev->dev, "probed\n");
	return 0;
}

static void remove(struct platform_device *dev)
{
	dev_info(&dev->dev, "removed\n");
}

static struct platform_driver pdrv = {
	.probe = probe,
	.remove_new = remove,
	.driver = { .name = NAME },
};

static int thread_fn(void *data)
{
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	return 0;
}

static void timer_fn(struct timer_list *t)
{
	WRITE_ONCE(ticks, ticks + 1);
	mod_timer(t, jiffies + msecs_to_jiffies(200));
}

static void dwork_fn(struct work_struct *work)
{
	WRITE_ONCE(ticks, ticks + 1);
	schedule_delayed_work(to_delayed_work(work), msecs_to_jiffies(200));
}

/* Each init returns 0 or -errno; each exit undoes exactly its init. */

static int kl_slab_init(void)
{
	cache = kmem_cache_create(NAME "_obj", 192, 0, 0, NULL);
	if (!cache)
		return -ENOMEM;
	cache_obj = kmem_cache_alloc(cache, GFP_KERNEL);
	if (!cache_obj) {
		kmem_cache_destroy(cache);
		return -ENOMEM;
	}
	return 0;
}

static void kl_slab_exit(void)
{
	kmem_cache_free(cache, cache_obj);
	kmem_cache_destroy(cache);
}

static int kl_debugfs_init(void)
{
	debugfs_dir = debugfs_create_dir(NAME, NULL);
	if (IS_ERR(debugfs_dir))
		return PTR_ERR(debugfs_dir);
	debugfs_create_u32("ticks", 0444, debugfs_dir, &ticks);
	return 0;
}

static void kl_debugfs_exit(void)
{
	debugfs_remove_recursive(debugfs_dir);
}

static int kl_class_init(void)
{
	class = class_create(NAME);
	if (IS_ERR(class))
		return PTR_ERR(class);
	class_dev = device_create(class, NULL, MKDEV(0, 0), NULL, NAME "0");
	if (IS_ERR(class_dev)) {
		class_destroy(class);
		return PTR_ERR(class_dev);
	}
	return 0;
}

static void kl_class_exit(void)
{
	device_unregister(class_dev);
	class_destroy(class);
}

static int kl_kobject_init(void)
{
	kobj = kobject_create_and_add(NAME, kernel_kobj);
	return kobj ? 0 : -ENOMEM;
}

static void kl_kobject_exit(void)
{
	kobject_put(kobj);
}

static int kl_platform_init(void)
{
	int err = platform_driver_register(&pdrv);

	if (err)
		return err;
	pdev = platform_device_register_simple(NAME, -1, NULL, 0);
	if (IS_ERR(pdev)) {
		platform_driver_unregister(&pdrv);
		return PTR_ERR(pdev);
	}
	return 0;
}

static void kl_platform_exit(void)
{
	platform_device_unregister(pdev);
	platform_driver_unregister(&pdrv);
}

static int kl_proc_init(void)
{
	proc_dir = proc_mkdir(NAME, NULL);
	if (!proc_dir)
		return -EEXIST;
	if (!proc_create_single("status", 0444, proc_dir, proc_show)) {
		proc_remove(proc_dir);
		return -ENOMEM;
	}
	return 0;
}

static void kl_proc_exit(void)
{
	proc_remove(proc_dir);
}

static int kl_sysctl_init(void)
{
	sysctl_table = kzalloc(sizeof(*sysctl_table), GFP_KERNEL);
	if (!sysctl_table)
		return -ENOMEM;
	sysctl_table->procname = kstrdup("value", GFP_KERNEL);
	sysctl_table->data = kmalloc(sizeof(int), GFP_KERNEL);
	sysctl_table->maxlen = sizeof(int);
	sysctl_table->mode = 0444;
	sysctl_table->proc_handler = proc_dointvec;
	if (!sysctl_table->procname || !sysctl_table->data)
		goto free;
	*(int *)sysctl_table->data = 1;
	sysctl_hdr = register_sysctl_sz("kcycle/" NAME, sysctl_table, 1);
	if (sysctl_hdr)
		return 0;
free:
	kfree(sysctl_table->data);
	kfree(sysctl_table->procname);
	kfree(sysctl_table);
	return sysctl_hdr ? 0 : -EEXIST;
}

static void kl_sysctl_exit(void)
{
	unregister_sysctl_table(sysctl_hdr);
	kfree(sysctl_table->data);
	kfree(sysctl_table->procname);
	kfree(sysctl_table);
}

static int kl_chrdev_init(void)
{
	return alloc_chrdev_region(&chrdev, 0, 1, NAME);
}

static void kl_chrdev_exit(void)
{
	unregister_chrdev_region(chrdev, 1);
}

static int kl_misc_init(void)
{
	int err;

	misc = kzalloc(sizeof(*misc), GFP_KERNEL);
	if (!misc)
		return -ENOMEM;
	misc->minor = MISC_DYNAMIC_MINOR;
	misc->name = kstrdup(NAME, GFP_KERNEL);
	misc->fops = &misc_fops;
	err = misc->name ? misc_register(misc) : -ENOMEM;
	if (err) {
		kfree(misc->name);
		kfree(misc);
	}
	return err;
}

static void kl_misc_exit(void)
{
	misc_deregister(misc);
	kfree(misc->name);
	kfree(misc);
}

static int kl_kthread_init(void)
{
	thread = kthread_run(thread_fn, NULL, NAME);
	return PTR_ERR_OR_ZERO(thread);
}

static void kl_kthread_exit(void)
{
	kthread_stop(thread);
}

static int kl_workqueue_init(void)
{
	wq = alloc_workqueue(NAME, WQ_MEM_RECLAIM | WQ_SYSFS, 0);
	return wq ? 0 : -ENOMEM;
}

static void kl_workqueue_exit(void)
{
	destroy_workqueue(wq);
}

static int kl_timer_init(void)
{
	timer_setup(&timer, timer_fn, 0);
	mod_timer(&timer, jiffies + msecs_to_jiffies(200));
	timer_live = true;
	return 0;
}

static void kl_timer_exit(void)
{
	timer_shutdown_sync(&timer);
	timer_live = false;
}

static int kl_work_init(void)
{
	INIT_DELAYED_WORK(&dwork, dwork_fn);
	schedule_delayed_work(&dwork, msecs_to_jiffies(200));
	dwork_live = true;
	return 0;
}

static void kl_work_exit(void)
{
	cancel_delayed_work_sync(&dwork);
	dwork_live = false;
}

static int kl_kmalloc_init(void)
{
	int i;

	buffer = kmalloc(4096, GFP_KERNEL);
	if (!buffer)
		return -ENOMEM;
	/* The deliberate leak: pointers that nothing keeps. */
	for (i = 0; i < leak_objects; i++)
		if (!kmalloc(512, GFP_KERNEL))
			break;
	return 0;
}

static void kl_kmalloc_exit(void)
{
	kfree(buffer);
}

struct step {
	const char *name;
	int (*init)(void);
	void (*exit)(void);
};

static const struct step steps[] = {
	{ "slab", kl_slab_init, kl_slab_exit },
	{ "debugfs", kl_debugfs_init, kl_debugfs_exit },
	{ "class", kl_class_init, kl_class_exit },
	{ "kobject", kl_kobject_init, kl_kobject_exit },
	{ "platform", kl_platform_init, kl_platform_exit },
	{ "proc", kl_proc_init, kl_proc_exit },
	{ "sysctl", kl_sysctl_init, kl_sysctl_exit },
	{ "chrdev", kl_chrdev_init, kl_chrdev_exit },
	{ "misc", kl_misc_init, kl_misc_exit },
	{ "kthread", kl_kthread_init, kl_kthread_exit },
	{ "workqueue", kl_workqueue_init, kl_workqueue_exit },
	{ "timer", kl_timer_init, kl_timer_exit },
	{ "work", kl_work_init, kl_work_exit },
	{ "kmalloc", kl_kmalloc_init, kl_kmalloc_exit },
};

static int init_progress;

/* Is `name` in the comma-separated `list`? */
static bool listed(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p = list;

	if (!strcmp(list, "all"))
		return true;
	while ((p = strstr(p, name))) {
		bool starts = p == list || p[-1] == ',';
		bool ends = p[len] == '\0' || p[len] == ',';

		if (starts && ends)
			return true;
		p += len;
	}
	return false;
}

static void unwind(int from, const char *skip)
{
	while (from-- > 0) {
		if (listed(skip, steps[from].name)) {
			pr_info(NAME ": leaving %s behind\n", steps[from].name);
			continue;
		}
		steps[from].exit();
	}
}

static int __init kcycle_leaks_init(void)
{
	int i, err;

	for (i = 0; i < ARRAY_SIZE(steps); i++) {
		err = steps[i].init();
		if (err) {
			pr_err(NAME ": init failed at %s: %d\n", steps[i].name, err);
			unwind(i, unwind_leak);
			return err;
		}
		if (!strcmp(fail_at, steps[i].name)) {
			pr_err(NAME ": injected failure after %s\n", steps[i].name);
			unwind(i + 1, unwind_leak);
			return -ENODEV;
		}
		init_progress = i + 1;
	}
	pr_info(NAME ": loaded (%d steps)\n", init_progress);
	return 0;
}

static void __exit kcycle_leaks_exit(void)
{
	unwind(init_progress, leak);
	pr_info(NAME ": unloaded\n");
}

module_init(kcycle_leaks_init);
module_exit(kcycle_leaks_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kcycle's leak controls: one deliberate teardown bug per namespace");
